"""Resumable batch inference: order, error rows, torn rows and restarts."""

from __future__ import annotations

import csv
import json

import pytest

from dlpipe.errors import DataError
from dlpipe.models.runtimes import load_runtime
from dlpipe.models.tasks import get_task
from dlpipe.serving.batch_job import completed_inputs, result_rows, run_batch_job


def expand_inputs(sources):
    return get_task("image").collect_inputs(sources).ids


def classifier(runtime, top_k, batch_size):
    """A `classify(todo)` over image paths, as `dlpipe predict --out` builds it."""
    return lambda todo: result_rows(runtime, runtime.task.collect_inputs(todo), top_k, batch_size)


class Killed(Exception):
    pass


def test_killed_job_resumes_without_losing_or_repeating_rows(trained_run, tmp_path):
    root, out = trained_run
    runtime = load_runtime(out)
    paths = expand_inputs([str(root)])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 40)
    paths.insert(5, str(tmp_path / "bad.jpg"))
    result_file = tmp_path / "rows.jsonl"

    def dies_after_two_batches(todo):
        for number, rows in enumerate(classifier(runtime, 1, 8)(todo)):
            if number == 2:
                raise Killed
            yield rows

    with pytest.raises(Killed):
        run_batch_job(dies_after_two_batches, paths, result_file)
    written = result_file.read_text().splitlines()
    assert len(written) == 17  # two batches of 8 images, plus the error row between them
    with result_file.open("a") as handle:
        handle.write('{"input": "torn", "lab')  # the kill hit mid-row
    summary = run_batch_job(classifier(runtime, 1, 8), paths, result_file)
    rows = [json.loads(line) for line in result_file.read_text().splitlines()]
    assert [row["input"] for row in rows] == paths  # every input once, in order
    assert summary.skipped_as_done == 17 and summary.succeeded + summary.failed == len(paths) - 17
    assert "cannot be decoded" in rows[5]["error"]
    assert sum(1 for row in rows if "error" in row) == 1


def test_csv_output_and_path_lists(trained_run, tmp_path):
    root, out = trained_run
    runtime = load_runtime(out)
    listing = tmp_path / "paths.txt"
    chosen = expand_inputs([str(root / "red")])[:3]
    listing.write_text("\n".join(chosen) + "\n")
    result_file = tmp_path / "rows.csv"
    summary = run_batch_job(classifier(runtime, 2, 8), expand_inputs([str(listing)]), result_file)
    assert summary.succeeded == 3 and summary.failed == 0
    with result_file.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["input"] for row in rows] == chosen
    assert all(row["label"] == "red" for row in rows)
    assert len(json.loads(rows[0]["top"])) == 2
    assert completed_inputs(result_file, "csv") == set(chosen)


def test_empty_folder_and_missing_input(tmp_path):
    (tmp_path / "empty").mkdir()
    assert expand_inputs([str(tmp_path / "empty")]) == []
    with pytest.raises(DataError, match="no such file or folder"):
        expand_inputs([str(tmp_path / "missing")])
