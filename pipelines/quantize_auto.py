"""`dlpipe export RUN --quantize auto --max-drop POINTS`: the smallest (or fastest) .tflite within an accuracy budget.

Every candidate (float32, float16, dynamic-range int8, full int8, and int8 with its most error-prone layers
kept in float) is written to a scratch folder, loaded back with dlpipe's own runtime and scored on data the
shipped weights never trained on: `--eval-data`, else the run's validation split when the shipped model was
not refitted on it (a refitted model's validation split is training data: refused). The score is the task's
headline in points (accuracy; micro F1 for multi-label, mAP for detection, mean IoU for segmentation); a
candidate within `max_drop` points of the float32 file is eligible, and the smallest (or fastest) ships
under its usual name, atomically; the other files in the folder are left as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from dlpipe import atomic, run_lock
from dlpipe.errors import DataError, DlpipeError

# (name, export format, whether the fragile layers stay float): the float32 file is the reference
CANDIDATES = (("float32", "tflite", False), ("float16", "tflite-float16", False), ("dynamic", "tflite-dynamic", False),
              ("int8", "tflite-int8", False), ("int8-mixed", "tflite-int8", True))
HEADLINES = {"detect": "map", "segment": "mean_iou"}  # the task's headline where it is not `task.headline_metric`
SCRATCH = ".quantize-auto"
RECORD_KEY = "quantize_auto"


@dataclass
class Candidate:
    """One candidate file and what was measured on it; `verdict` says why it shipped or not."""

    name: str
    format: str
    file: str | None = None
    size_bytes: int | None = None
    ms_per_input: float | None = None
    score: float | None = None  # points (0-100)
    drop: float | None = None  # points below the float32 file
    verdict: str = ""
    note: str = ""


@dataclass
class HeldOut:
    """The labelled inputs the candidates are scored on, and where they came from."""

    inputs: Any  # an InputSet
    labels: list[Any]
    source: str


def export_auto(run_dir: str | Path, out_dir: str | Path | None, max_drop: float, eval_data: str | None = None,
                prefer: str = "size", echo: Callable[[str], None] = print,
                keep_candidates: str | Path | None = None) -> dict[str, Any]:
    """Build, score and choose; returns the record written to artifacts.json (chosen file, every candidate).

    `keep_candidates`: a folder to keep every candidate in (KEEP/NAME/ with its side files), to inspect them.
    """
    from dlpipe.models import artifacts

    run_dir = Path(run_dir)
    if max_drop < 0:
        raise DlpipeError(f"export: --max-drop must be 0 or more points, got {max_drop:g}")
    if prefer not in ("size", "speed"):
        raise DlpipeError(f"export: --prefer must be size or speed, got {prefer!r}")
    if not (run_dir / artifacts.KERAS_FILE).is_file():
        raise DataError(str(run_dir / artifacts.KERAS_FILE), "model file does not exist; give a finished run's folder")
    target_dir = Path(out_dir) if out_dir else run_dir
    with run_lock.hold(target_dir):
        return _export_auto(run_dir, target_dir, max_drop, eval_data, prefer, echo,
                            Path(keep_candidates) if keep_candidates else None)


def _export_auto(run_dir: Path, target_dir: Path, max_drop: float, eval_data: str | None, prefer: str,
                 echo: Callable[[str], None], keep: Path | None) -> dict[str, Any]:
    from dlpipe.pipelines.exporting import _run_data

    model, task, bundle, preprocessing = _load_run(run_dir)
    train, val, _ = _run_data(run_dir)
    held_out = held_out_data(run_dir, task, bundle.class_names, eval_data, val)
    _remove_dead_scratch(target_dir / SCRATCH)
    scratch = keep or target_dir / SCRATCH / str(os.getpid())
    for name, _, _ in CANDIDATES:  # only the candidates' own folders: a --keep-candidates folder may hold more
        shutil.rmtree(scratch / name, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        candidates = _write_candidates(model, task, bundle, preprocessing, train, val, scratch, echo)
        _score(candidates, held_out, task, preprocessing)
        chosen = choose(candidates, max_drop, prefer)
        record = {"max_drop": max_drop, "prefer": prefer, "eval_data": held_out.source,
                  "eval_count": len(held_out.labels), "metric": _headline(task),
                  "chosen": chosen.name, "candidates": [asdict(c) for c in candidates]}
        path = _ship(chosen, scratch, target_dir, bundle, record)
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            (target_dir / SCRATCH).rmdir()  # left when another export is using it
    from dlpipe.pipelines.model_card import CARD_TASKS, write_model_card

    if task.name in CARD_TASKS:
        write_model_card(run_dir, target_dir if target_dir != run_dir else None)
    for line in table_lines(candidates, record["metric"]):
        echo(line)
    echo(f"chose {chosen.name}: wrote {path} ({chosen.size_bytes / 1e6:.2f} MB; {record['metric']} {chosen.score:.2f} "
         f"against float32's {candidates[0].score:.2f} on {record['eval_count']} held-out inputs, budget "
         f"{max_drop:g} points)")
    return record


def _remove_dead_scratch(root: Path) -> None:
    """What a killed `--quantize auto` left (SCRATCH/PID of a process that is gone); a live one's stays."""
    from dlpipe.models.export import _alive

    if root.is_dir():
        for leftover in root.iterdir():
            if not (leftover.name.isdigit() and _alive(int(leftover.name))):
                shutil.rmtree(leftover, ignore_errors=True)


def _load_run(run_dir: Path) -> tuple[Any, Any, Any, Any]:
    """The run's Keras model, task, side-file bundle and preprocessing, as `dlpipe export` loads them."""
    import dataclasses
    import hashlib

    from dlpipe.models import artifacts
    from dlpipe.models.tasks import get_task
    from dlpipe.pipelines.api import load_saved_config

    model = artifacts.load_keras(run_dir / artifacts.KERAS_FILE)
    side = artifacts.read_side_files(run_dir / artifacts.KERAS_FILE)
    task = get_task(side.task)
    preprocessing = task.preprocessing_from_dict(side.preprocessing)
    if getattr(preprocessing, "vocab_file", None):
        preprocessing = dataclasses.replace(preprocessing, vocab_file=str(run_dir / preprocessing.vocab_file))
    try:
        config_text = load_saved_config(run_dir).to_yaml()
    except DlpipeError:
        config_text = ""
    provenance = {"source_run": str(run_dir.resolve()),
                  "config_sha256": hashlib.sha256(config_text.encode()).hexdigest() if config_text else None}
    bundle = artifacts.Bundle(task.name, list(side.class_names), preprocessing,
                              task.side_files_for(model, preprocessing), provenance)
    return model, task, bundle, preprocessing


def held_out_data(run_dir: Path, task: Any, class_names: list[str], eval_data: str | None, val: Any) -> HeldOut:
    """`--eval-data`, else the run's validation split if the shipped model never trained on it; else a DlpipeError."""
    from dlpipe.models.tasks import InputSet

    if eval_data:
        if not Path(eval_data).exists():
            raise DataError(str(eval_data), "does not exist; give labelled data as `dlpipe evaluate --data` takes")
        labelled = task.labelled_data(Path(eval_data))
        if not labelled.labels:
            raise DataError(str(eval_data), "holds no labelled inputs to score the candidates on")
        task.check_labels(labelled.labels, class_names, str(eval_data))
        return HeldOut(labelled.inputs, list(labelled.labels), str(eval_data))
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    if metrics.get("refit"):
        raise DlpipeError(f"export: {run_dir}'s model was refitted on train + validation, so none of its data is "
                          "held out; pass --eval-data PATH (labelled data it never trained on)")
    if not len(val) or not val.labels:
        raise DlpipeError(f"export: {run_dir} has no readable labelled validation split to score candidates on; "
                          "pass --eval-data PATH (labelled data the model never trained on)")
    inputs = InputSet()
    for index, item in enumerate(val.inputs):
        inputs.add(f"val:{index}", item)
    # the task's own reading of a training label (a class name; a multi-label run's names that are on)
    return HeldOut(inputs, [task.label_name(label, class_names) for label in val.labels],
                   f"validation split of {run_dir} (the shipped model was not refitted on it)")


def _write_candidates(model: Any, task: Any, bundle: Any, preprocessing: Any, train: Any, val: Any,
                      scratch: Path, echo: Callable[[str], None]) -> list[Candidate]:
    """Each candidate exported into its own scratch folder."""
    from dlpipe.models.export import ExportRequest, scratch_space
    from dlpipe.models.export.tflite_source import one_source_per_model
    from dlpipe.pipelines.exporting import _parity_sample

    sample, labels = _parity_sample(task, preprocessing, val, bundle.class_names, 100)
    request = ExportRequest(bundle, calibration=list(train.inputs), sample=sample, sample_labels=labels)
    with scratch_space(scratch), one_source_per_model():  # the model is written once for the five conversions
        candidates = [_write_candidate(model, task, name, fmt, selective, scratch, request, echo)
                      for name, fmt, selective in CANDIDATES]
    if candidates[0].file is None:
        raise DlpipeError(f"export: the float32 reference could not be written: {candidates[0].verdict}")
    return candidates


def _write_candidate(model: Any, task: Any, name: str, fmt: str, selective: bool, scratch: Path, request: Any,
                     echo: Callable[[str], None]) -> Candidate:
    """One candidate exported into scratch/name; a refused or failed conversion is its verdict."""
    from dlpipe.models.export import export
    from dlpipe.models.export.converters import keep_fragile_in_float
    from dlpipe.quiet import captured_output

    candidate = Candidate(name, fmt)
    echo(f"  converting {name} ...")
    kept: list[str] = []
    failure: Exception | None = None
    with captured_output():  # the converter prints its SavedModel's endpoints, the debugger its progress
        try:
            with keep_fragile_in_float() if selective else contextlib.nullcontext(kept) as kept:
                path = export(model, fmt, scratch / name, request)
        except Exception as error:  # noqa: BLE001 - a refused or failed candidate is out; the others go on
            failure = error
    if isinstance(failure, DlpipeError):
        candidate.verdict = f"rejected: not available ({str(failure).removeprefix('export: ')})"
    elif failure is not None:
        candidate.verdict = f"rejected: conversion failed ({type(failure).__name__}: {str(failure)[:160]})"
    elif selective and not kept:  # the task's int8 exporter sets up its own converter: the same file as int8
        candidate.verdict = (f"rejected: not available (the {task.name} int8 exporter configures its own "
                             "converter, so no layer can be kept in float)")
    else:
        candidate.file, candidate.size_bytes = str(path), path.stat().st_size
        candidate.note = f"{len(kept)} layer(s) kept in float" if selective else ""
    return candidate


def _score(candidates: list[Candidate], held_out: HeldOut, task: Any, preprocessing: Any, batch_size: int = 32) -> None:
    """Each written file through dlpipe's runtime on the held-out inputs: score in points and ms per input."""
    import numpy as np
    from dlpipe.models.runtimes import load_runtime

    label_of = dict(zip(held_out.inputs.ids, held_out.labels))
    batches, keys = [], []
    for prepared in task.batches(held_out.inputs, preprocessing, batch_size):
        if prepared.readable:
            keys += prepared.readable
            batches.append(prepared.batch)
    if not keys:
        raise DataError(held_out.source, "no readable labelled inputs to score the candidates on")
    metric = _headline(task)
    for candidate in candidates:
        if candidate.file is None:
            continue
        try:
            runtime = load_runtime(candidate.file)
            runtime.predict(batches[0])  # warm up: kernels and tensors are built on the first call
            passes = []
            for _ in range(2):  # the faster of two passes: on a shared machine the minimum is what the file costs
                started = time.perf_counter()
                outputs = [runtime.predict(batch) for batch in batches]
                passes.append(time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - written but LiteRT cannot run it: out, the others go on
            candidate.verdict = f"rejected: does not run ({type(error).__name__}: {str(error)[:160]})"
            continue
        candidate.ms_per_input = min(passes) * 1000 / len(keys)
        report = runtime.task.score([label_of[key] for key in keys], np.concatenate(outputs), runtime.class_names)
        candidate.score = 100.0 * float(report[metric])
    reference = candidates[0].score
    if reference is None:
        raise DlpipeError(f"export: the float32 reference did not run: {candidates[0].verdict}")
    for candidate in candidates:
        if candidate.score is not None:
            candidate.drop = reference - candidate.score


def choose(candidates: list[Candidate], max_drop: float, prefer: str) -> Candidate:
    """The smallest (prefer size) or fastest (prefer speed) scored candidate within `max_drop` points of float32;
    float32 itself when no other is within the budget. Fills every candidate's verdict."""
    key = (lambda c: c.size_bytes) if prefer == "size" else (lambda c: c.ms_per_input)
    eligible = []
    for candidate in candidates:
        if candidate.drop is None:
            continue
        if candidate.drop > max_drop + 1e-9:
            candidate.verdict = f"rejected: over budget (drops {candidate.drop:.2f} points, budget {max_drop:g})"
        else:
            eligible.append(candidate)
    chosen = min(eligible, key=key)
    for candidate in eligible:
        if candidate is chosen:
            candidate.verdict = ("chosen" if chosen.name != "float32" or len(eligible) > 1 else
                                 "chosen: no other candidate is within the budget")
        else:
            candidate.verdict = (f"rejected: within budget but {'larger' if prefer == 'size' else 'slower'} "
                                 f"than {chosen.name}")
    return chosen


def _ship(chosen: Candidate, scratch: Path, target_dir: Path, bundle: Any, record: dict[str, Any]) -> Path:
    """The chosen file under its usual name in `target_dir` (atomic rename), its side files and its record."""
    from dlpipe.models import artifacts
    from dlpipe.models.export import FORMATS

    source = Path(chosen.file)
    target = target_dir / FORMATS[chosen.format].target
    parity = (artifacts.read_record(source) or {}).get("parity")
    target_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_side_files(target_dir, bundle)
    with atomic.replacing_file(target) as tmp:  # the old file is replaced whole or not at all
        shutil.copyfile(source, tmp)
    artifacts.write_record(target, chosen.format, bundle, parity)
    manifest_path = target_dir / artifacts.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest[target.name][RECORD_KEY] = {**record, "candidates": [
        {**row, "file": Path(row["file"]).name if row["file"] else None} for row in record["candidates"]]}
    atomic.write_json(manifest_path, manifest)
    return target


def _headline(task: Any) -> str:
    return HEADLINES.get(task.name, task.headline_metric)


def table_lines(candidates: list[Candidate], metric: str) -> list[str]:
    """The console table: every candidate with its size, ms per input, score, drop and verdict."""
    lines = [f"{'candidate':<11} {'size MB':>8} {'ms/input':>9} {metric + ' %':>11} {'drop':>6}  verdict"]
    for c in candidates:
        size = f"{c.size_bytes / 1e6:8.2f}" if c.size_bytes is not None else f"{'-':>8}"
        speed = f"{c.ms_per_input:9.2f}" if c.ms_per_input is not None else f"{'-':>9}"
        score = f"{c.score:11.2f}" if c.score is not None else f"{'-':>11}"
        drop = f"{c.drop:6.2f}" if c.drop is not None else f"{'-':>6}"
        note = f" ({c.note})" if c.note else ""
        lines.append(f"{c.name:<11} {size} {speed} {score} {drop}  {c.verdict}{note}")
    return lines
