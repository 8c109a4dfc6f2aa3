"""A batch job answers every input with a row: a bad entry of a list file is an error row, not the end of the job."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dlpipe.errors import DataError
from dlpipe.models.tasks import get_task
from dlpipe.pipelines.cli import main


def photo(path):
    Image.fromarray(np.full((20, 20, 3), (200, 30, 30), np.uint8)).save(path)
    return path


def test_a_list_with_a_missing_path_gives_an_error_row_and_the_good_image_its_answer(tiny_tflite, tmp_path):
    good = photo(tmp_path / "good.png")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{tmp_path / 'missing.jpg'}\n{good}\n")
    rows_file = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["predict", str(tiny_tflite / "model.tflite"), str(listing),
                                       "--out", str(rows_file)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert [row["input"] for row in rows] == [str(tmp_path / "missing.jpg"), str(good)]
    assert rows[0]["error"] == "no such file"
    assert "error" not in rows[1] and rows[1]["label"] in ("blue", "red")


def test_lists_folders_and_globs_each_give_one_input_per_entry(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    first, second = photo(folder / "a.png"), photo(folder / "b.png")
    (folder / "notes.txt.bak").write_text("not a photo")
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"{first}\n{folder}\n{tmp_path / 'gone.png'}\n".encode("utf-16"))  # a BOM: UTF-16
    inputs = get_task("image").collect_inputs([str(listing), str(folder / "*.png")])
    assert inputs.ids == [str(first), str(second), str(tmp_path / "gone.png")]  # each input once, where first met
    assert inputs.errors == {str(tmp_path / "gone.png"): "no such file"}
    with pytest.raises(DataError, match="matches no file"):
        get_task("image").collect_inputs([str(folder / "*.jpg")])
