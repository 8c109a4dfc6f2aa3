"""Resumable batch inference: many inputs -> one JSONL or CSV file, streamed to disk.

The artifact's task reads and prepares the inputs (images decode in
parallel while the model runs) and the runtime classifies them in batches;
nothing here knows the modality. Each finished batch is appended and
flushed, so a killed job loses at most the batch in flight; restarted with
the same command it drops any half-written last row, skips the inputs
already written and carries on. Unreadable inputs get a row with the error
instead of stopping the job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from dlpipe.errors import DataError
from dlpipe.serving.batching_defaults import BATCH_JOB_BATCH_SIZE
from dlpipe.models.tasks import InputSet, OutputWriter

CSV_FIELDS = ("input", "label", "score", "top", "error")


@dataclass
class JobSummary:
    total: int
    succeeded: int
    failed: int
    skipped_as_done: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        done = self.succeeded + self.failed
        return done / self.seconds if self.seconds else 0.0


def result_rows(runtime: Any, inputs: InputSet, top_k: int = 5, batch_size: int = BATCH_JOB_BATCH_SIZE,
                writer: OutputWriter | None = None, in_flight: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Batches of result rows ({"input", ..., "label", "score", "top"} or {"input", "error"}), in input order.

    The task may prepare inputs out of order (e.g. images refused from their header first); rows are
    held back until every earlier input has its row. With a `writer` (the task's `output_writer`),
    each input's files (e.g. its mask PNG) are written before its row, so a row on disk means its
    files are complete. `in_flight` batches run at once, each on its own runtime of a `RuntimePool`
    (the cores split between them); by default as many as the task asks for (`Task.batches_in_flight`).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from dlpipe.models.runtimes import pooled

    task = runtime.task
    in_flight = in_flight or task.batches_in_flight()
    model = pooled(runtime, in_flight) if in_flight > 1 else runtime
    done: dict[str, dict[str, Any]] = {key: {"input": key, "error": error} for key, error in inputs.errors.items()}
    position = 0

    def ready() -> list[dict[str, Any]]:
        nonlocal position
        rows = []
        while position < len(inputs.ids) and inputs.ids[position] in done:
            rows.append(done.pop(inputs.ids[position]))
            position += 1
        return rows

    def finish(prepared: Any, running: Any) -> list[dict[str, Any]]:
        outputs = iter(running.result()) if running is not None else iter(())
        for key in prepared.ids:
            if key in prepared.errors:
                done[key] = {"input": key, "error": prepared.errors[key]}
            else:
                output = next(outputs)
                fields = task.describe(output, runtime.class_names, top_k, digits=6)
                if writer is not None:
                    fields.update(writer.write(key, inputs.payloads[key], output, fields))
                done[key] = {"input": key, **task.row_fields(inputs.payloads[key]), **fields}
        return ready()

    pending: deque = deque()
    with ThreadPoolExecutor(max(1, in_flight), thread_name_prefix="dlpipe-batch") as workers:
        for prepared in task.batches(inputs, runtime.preprocessing, batch_size):
            pending.append((prepared, workers.submit(model.predict, prepared.batch) if prepared.readable else None))
            if len(pending) >= max(1, in_flight):
                rows = finish(*pending.popleft())
                if rows:
                    yield rows
        while pending:
            rows = finish(*pending.popleft())
            if rows:
                yield rows
    rows = ready()
    if rows:
        yield rows


def output_format(path: str | Path, fmt: str | None = None) -> str:
    if Path(path).is_dir():
        raise DataError(str(path), "is a folder; this model writes its rows to a file: give --out NAME.jsonl or NAME.csv")
    fmt = fmt or ("csv" if str(path).lower().endswith(".csv") else "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise DataError(str(path), f"unknown output format '{fmt}'; use .jsonl or .csv")
    return fmt


def completed_inputs(path: str | Path, fmt: str) -> set[str]:
    """Inputs already written by an earlier run; a torn last row is cut off first."""
    path = Path(path)
    if not path.is_file():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the job died mid-row: drop the partial row
        with path.open("r+b") as handle:
            handle.truncate(end)
        data = data[:end]
    text = data.decode("utf-8")
    if fmt == "jsonl":
        return {json.loads(line)["input"] for line in text.splitlines() if line.strip()}
    return {row["input"] for row in csv.DictReader(io.StringIO(text))}


class RowWriter:
    """Appends rows and flushes each batch to disk (fsync), writing a CSV header once."""

    def __init__(self, path: str | Path, fmt: str):
        self.path = Path(path)
        self.fmt = fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.handle = self.path.open("a", encoding="utf-8", newline="")
        self.csv = csv.DictWriter(self.handle, fieldnames=CSV_FIELDS) if fmt == "csv" else None
        if self.csv and new:
            self.csv.writeheader()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            if self.csv:
                flat = dict(row)
                flat["top"] = json.dumps(row.get("top", []))
                self.csv.writerow({key: flat.get(key, "") for key in CSV_FIELDS})
            else:
                self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def run_batch_job(
    classify: Callable[[Sequence[str]], Iterator[list[dict[str, Any]]]],
    inputs: Sequence[str],
    out_file: str | Path,
    fmt: str | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> JobSummary:
    """Classify `inputs` with `classify` (yields row batches in input order) into `out_file`, resumably."""
    fmt = output_format(out_file, fmt)
    done = completed_inputs(out_file, fmt)
    todo = [item for item in inputs if item not in done]
    writer = RowWriter(out_file, fmt)
    succeeded = failed = 0
    started = time.perf_counter()
    try:
        for rows in classify(todo):
            writer.write(rows)
            failed += sum(1 for row in rows if row.get("error"))
            succeeded += sum(1 for row in rows if not row.get("error"))
            if progress:
                progress(succeeded + failed, len(todo), time.perf_counter() - started)
    finally:
        writer.close()
    return JobSummary(len(inputs), succeeded, failed, len(inputs) - len(todo), time.perf_counter() - started)
