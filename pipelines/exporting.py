"""Export a trained model to deployable artifacts: used by the export stage and by `dlpipe export RUN`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from dlpipe import run_lock
from dlpipe.errors import DataError, DlpipeError
from dlpipe.pipelines.stage import Examples


def export_formats(model: Any, formats: Sequence[str], out_dir: Path, task: Any, class_names: list[str],
                   preprocessing: Any, train: Examples, val: Examples, parity_sample: int = 100,
                   source_run: Path | None = None, config_text: str = "") -> dict[str, Path]:
    """Write every format in `formats` under `out_dir`; returns format -> artifact path.

    Training inputs calibrate full-integer models; up to `parity_sample`
    validation inputs check each written artifact against `model`.
    """
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export, scratch_space
    from dlpipe.models.export.tflite_source import one_source_per_model

    provenance = {"source_run": str(Path(source_run).resolve()) if source_run else None,
                  "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest() if config_text else None}
    bundle = artifacts.Bundle(task.name, list(class_names), preprocessing, task.side_files_for(model, preprocessing),
                              provenance)
    sample, sample_labels = _parity_sample(task, preprocessing, val, class_names, parity_sample)
    request = ExportRequest(bundle, calibration=list(train.inputs), sample=sample, sample_labels=sample_labels)
    # several .tflite files of the model convert from one SavedModel of it, kept in OUT's scratch folder until the last
    with scratch_space(Path(out_dir)), one_source_per_model():
        return {fmt: export(model, fmt, out_dir, request) for fmt in formats}


def _parity_sample(task: Any, preprocessing: Any, val: Examples, class_names: list[str],
                   count: int) -> tuple[Any, list[str] | None]:
    """The first readable validation inputs (up to `count`) as one model batch, with their label names."""
    from dlpipe.models.tasks import InputSet

    if not count or not len(val):
        return None, None
    inputs, names = InputSet(), {}
    labels: list[int | None] = list(val.labels[:count]) if val.labels else [None] * min(count, len(val))
    for item, label in zip(val.inputs[:count], labels):  # no labels (masks as targets): agreement only
        key = f"val:{len(inputs.ids)}"
        inputs.add(key, item)
        names[key] = task.label_name(label, class_names) if label is not None else None
    keys: list[str] = []
    parts: list[Any] = []
    for prepared in task.batches(inputs, preprocessing, count):
        readable = prepared.readable
        if readable:
            keys += readable
            parts.append(prepared.batch)
    if not keys:
        return None, None
    batch = parts[0] if len(parts) == 1 else task.stack([item for part in parts for item in part])
    return batch, ([names[key] for key in keys] if val.labels else None)


def export_named(name: str, fmt: str, out_dir: str | Path | None, sample: Sequence[str] = ()) -> Path:
    """`dlpipe export NAMED-MODEL`: a named model (e.g. coco-detector) written as `fmt` into `out_dir`.

    `sample` (files or folders of inputs) calibrates full-integer files and is the parity check's batch.
    """
    if out_dir is None:
        raise DlpipeError(f"export: {name} is a named model; say where to write it with --out DIR")
    with run_lock.hold(out_dir):
        return _export_named(name, fmt, out_dir, sample)


def _export_named(name: str, fmt: str, out_dir: str | Path, sample: Sequence[str]) -> Path:
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.runtimes import load_runtime

    runtime = load_runtime(name)
    task, prep = runtime.task, runtime.preprocessing
    bundle = artifacts.Bundle(task.name, list(runtime.class_names), prep, {}, {"source_model": name})
    inputs = task.collect_inputs(list(sample)) if sample else None
    batch = None
    if inputs is not None and inputs.ids:
        parts = [prepared.batch for prepared in task.batches(inputs, prep, max(1, len(inputs.ids))) if prepared.readable]
        batch = parts[0] if parts else None
    calibration = [inputs.payloads[key] for key in inputs.ids if key in inputs.payloads] if inputs else []
    return export(runtime.model, fmt, out_dir, ExportRequest(bundle, calibration=calibration, sample=batch))


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path | None = None) -> Path:
    """`dlpipe export`: re-export a finished run's model.keras in another format.

    The run's own load stage re-reads its data (config.yaml) for int8
    calibration and for the parity check; without the data, formats that need
    no calibration are still written, without a parity record.
    """
    from dlpipe.models import artifacts
    from dlpipe.models.export import FORMATS

    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise DlpipeError(f"export: unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if not (run_dir / artifacts.KERAS_FILE).is_file():  # before the lock, which would create a missing folder
        raise DataError(str(run_dir / artifacts.KERAS_FILE), "model file does not exist; give a finished run's folder")
    with run_lock.hold(Path(out_dir) if out_dir else run_dir):
        return _export_run(run_dir, fmt, out_dir)


def _export_run(run_dir: Path, fmt: str, out_dir: str | Path | None) -> Path:
    import dataclasses

    from dlpipe.models import artifacts
    from dlpipe.models.tasks import get_task

    model = artifacts.load_keras(run_dir / artifacts.KERAS_FILE)
    side = artifacts.read_side_files(run_dir / artifacts.KERAS_FILE)
    task = get_task(side.task)
    preprocessing = task.preprocessing_from_dict(side.preprocessing)
    vocab = getattr(preprocessing, "vocab_file", None)
    if vocab:  # preprocessing.json names the vocabulary file the run folder holds
        preprocessing = dataclasses.replace(preprocessing, vocab_file=str(run_dir / vocab))
    train, val, config_text = _run_data(run_dir)
    target = export_formats(model, [fmt], Path(out_dir) if out_dir else run_dir, task, side.class_names, preprocessing,
                            train, val, source_run=run_dir, config_text=config_text)[fmt]
    from dlpipe.pipelines.model_card import CARD_TASKS, write_model_card

    if task.name in CARD_TASKS:
        write_model_card(run_dir, out_dir)
    return target


def _run_data(run_dir: Path) -> tuple[Examples, Examples, str]:
    """The run's training and validation examples, re-read by its own load stage; empty when the data is gone."""
    from dlpipe.pipelines.api import load_saved_config
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.stage import RunContext
    from dlpipe.models.tasks import get_task

    try:
        config = load_saved_config(run_dir)
    except DlpipeError:
        return Examples(), Examples(), ""
    spec = get_pipeline(config.pipeline)
    ctx = RunContext(out_dir=run_dir, seed=config.seed, config=config, task=get_task(spec.task), echo=lambda _: None)
    try:
        spec.stage_class("load")(config["load"]).run(ctx)
    except DlpipeError:
        return Examples(), Examples(), config.to_yaml()
    return ctx.train, ctx.val, config.to_yaml()
