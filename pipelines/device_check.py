"""`dlpipe check-device`: does the exported .tflite answer the user's own inputs in MediaPipe as the run's model does?

The app on a device hands MediaPipe Tasks a raw photo (or sentence), and MediaPipe prepares it its own way
(it stretches the whole photo to the input size with its own sampling, where dlpipe may centre-crop). The
reference is always the run's Keras model on the raw input through dlpipe's own preprocessing, never the
runtime under test. MediaPipe runs in its own environment (pipelines/mediapipe_env.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe import atomic
from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.pipelines import mediapipe_env

REPORT_FILE = "device_check.json"
TASKS = {"image": "image", "text": "text", "detect": "detect"}  # dlpipe task -> the MediaPipe worker's "kind"


def files_to_check(source: str | Path) -> tuple[Path, list[Path]]:
    """(the run folder, the .tflite files to run): every model*.tflite of a run folder, or the one file given."""
    source = Path(source)
    if source.is_file():
        if source.suffix != ".tflite":
            raise DataError(str(source), "is not a .tflite file; give a run folder or one of its model*.tflite files")
        return source.parent, [source]
    if not source.is_dir():
        raise DataError(str(source), "does not exist; give a run folder or a .tflite file")
    found = [path for name, path in artifacts.list_artifacts(source).items() if name in artifacts.TFLITE_VARIANTS]
    if not found:
        raise DataError(str(source), "holds no model*.tflite; export one with `dlpipe export RUN --format tflite`")
    return source, found


def reference_answers(keras_file: Path, data: Path, batch_size: int = 32, given: Any = None) -> dict[str, Any]:
    """The Keras model's top-1 on every readable input of `data`, with each input's label when `data` has them.

    Labelled: a folder of class sub-folders named as the model's labels (images), a labelled file (text);
    anything else is read as unlabelled inputs (every image under the folder, every line of the file).
    `given`: (InputSet, {id: label name} or None) to use instead of reading `data` (the export stage's).
    """
    from dlpipe.models.runtimes import load_runtime

    if not keras_file.is_file() and not _named(str(keras_file)):
        raise DataError(str(keras_file), "is missing: agreement is measured against the run's Keras model; give "
                                         "the run folder the .tflite came from, or --keras")
    runtime = load_runtime(keras_file, "keras")
    task = runtime.task
    if task.name not in TASKS:
        raise DataError(str(keras_file), f"check-device compares classifiers and detectors ({', '.join(TASKS)} "
                                         f"models); this is a {task.name} model")
    if task.name == "detect":
        return _box_reference(runtime, data, given)
    inputs, labels, skipped = (*given, []) if given is not None else _read_data(task, data, runtime.class_names)
    skipped = [*skipped, *({"path": key, "reason": reason} for key, reason in inputs.errors.items())]
    answers: dict[str, tuple[int, float]] = {}
    for prepared in task.batches(inputs, runtime.preprocessing, batch_size):
        skipped += [{"path": key, "reason": reason} for key, reason in prepared.errors.items()]
        if prepared.readable:
            outputs = np.asarray(runtime.predict(prepared.batch))
            for key, row in zip(prepared.readable, outputs):
                answers[key] = (int(np.argmax(row)), float(np.max(row)))
    if not answers:
        raise DataError(str(data), f"holds no readable {task.name} inputs to check on")
    return {"task": task.name, "class_names": runtime.class_names, "answers": answers, "labels": labels,
            "payloads": {key: str(inputs.payloads[key]) for key in answers}, "skipped": skipped}


def _box_reference(runtime: Any, data: Path, given: Any) -> dict[str, Any]:
    """A detector's reference: the boxes `dlpipe predict` keeps on each photo (pipelines/device_check_boxes.py)."""
    from dlpipe.pipelines.device_check_boxes import box_reference

    task = runtime.task
    inputs, labels, skipped = (*given, []) if given is not None else _read_data(task, data, runtime.class_names)
    return box_reference(runtime, inputs, labels, skipped, str(data))


def _named(name: str) -> bool:
    from dlpipe.models.pretrained import NAMED_MODELS

    return name in NAMED_MODELS


def reference_model(run: Path, tflites: list[Path], keras: str | Path | None) -> Path:
    """--keras, else the run's model.keras, else the named model the .tflite was exported from (coco-detector)."""
    own = run / artifacts.KERAS_FILE
    if keras or own.is_file():
        return Path(keras) if keras else own
    sources = {(artifacts.read_record(tflite) or {}).get("source_model") for tflite in tflites} - {None}
    source = sources.pop() if len(sources) == 1 else None  # one named model, whichever file records it
    return Path(source) if source and _named(str(source)) else own


def agreement(figures: dict[str, Any]) -> float | None:
    """A file's headline: top-1 agreement (classifiers), the share of the reference's boxes found (detectors)."""
    return figures.get("box_agreement") if "box_agreement" in figures else figures.get("top1_agreement")


def _read_data(task: Any, data: Path, class_names: list[str]) -> tuple[Any, dict[str, Any] | None, list]:
    """(inputs, {id: label name} or None, skipped): labelled when `data` is labelled data of the model's labels."""
    try:
        labelled = task.labelled_data(data)
        task.check_labels(labelled.labels, class_names, str(data))
        return labelled.inputs, dict(zip(labelled.inputs.ids, labelled.labels)), labelled.skipped
    except DataError:  # no class sub-folders named as the labels (or no labels): agreement only
        return task.collect_inputs([str(data)]), None, []


def compare(reference: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One file's figures: top-1 agreement with the Keras model, each one's accuracy (labelled inputs), the
    inputs they disagree on (both answers) and those MediaPipe could not answer."""
    names, labels = reference["class_names"], reference["labels"]
    keys = list(reference["answers"])
    disagree, failed, agree, right = [], [], 0, {"keras": 0, "mediapipe": 0}
    for key, answer in zip(keys, answers):
        if "error" in answer:
            failed.append({"input": key, "error": answer["error"]})
            continue
        ours, score = reference["answers"][key]
        theirs = int(answer["index"])
        truth = labels[key] if labels is not None else None
        right["keras"] += names[ours] == truth
        right["mediapipe"] += 0 <= theirs < len(names) and names[theirs] == truth
        if theirs == ours:
            agree += 1
            continue
        disagree.append({"input": key, "keras": names[ours], "keras_score": round(score, 4),
                         "mediapipe": names[theirs] if 0 <= theirs < len(names) else answer.get("label"),
                         "mediapipe_score": round(float(answer["score"]), 4), **({"label": truth} if labels else {}),
                         **({"text": reference["payloads"][key]} if reference["task"] == "text" else {})})
    answered = len(keys) - len(failed)
    result: dict[str, Any] = {"inputs": len(keys), "answered": answered,
                              "top1_agreement": agree / answered if answered else None}
    if labels is not None and answered:
        result.update(keras_accuracy=right["keras"] / answered, mediapipe_accuracy=right["mediapipe"] / answered)
    result.update(disagreements=disagree, unanswered=failed)
    return result


def check_device(source: str | Path, data: str | Path, out: str | Path | None = None, keras: str | Path | None = None,
                 mediapipe_python: str | None = None, web: bool = False, given: Any = None) -> dict[str, Any]:
    """Run each .tflite of `source` in MediaPipe Tasks on `data` (with `web`, also in MediaPipe Tasks Web in
    headless Chromium), compare with the Keras model, write the report (default RUN/device_check.json) and each
    file's summary under "mediapipe" (and "mediapipe_web") in the run's artifacts.json. `given`: the inputs
    instead of reading `data` (see `reference_answers`; `data` then only names them)."""
    from dlpipe.pipelines import web_check

    run, tflites = files_to_check(source)
    python = mediapipe_env.mediapipe_python(mediapipe_python)  # before any work: a missing environment is one line
    if web:
        web_check.browser()
    data = Path(data)
    if given is None and not data.exists():
        raise DataError(str(data), "does not exist; give a folder of photos (class sub-folders for accuracy) or a "
                                   "file of sentences")
    keras_file = reference_model(run, tflites, keras)
    reference = reference_answers(keras_file, data, given=given)
    inputs = [reference["payloads"][key] for key in reference["answers"]]
    if reference["task"] != "text":
        inputs = [str(Path(path).resolve()) for path in inputs]
    options = {"score_threshold": reference["score_threshold"]} if "score_threshold" in reference else {}
    answer = mediapipe_env.run_worker(python, TASKS[reference["task"]], tflites, inputs, **options)
    report: dict[str, Any] = {
        "task": reference["task"], "reference": str(keras_file), "data": str(data),
        "labelled": reference["labels"] is not None,
        "mediapipe_version": answer.get("mediapipe_version"), "mediapipe_python": str(python),
        "checked": datetime.now(timezone.utc).isoformat(timespec="seconds"), "skipped": reference["skipped"],
        **({"thresholds": reference["thresholds"]} if "thresholds" in reference else {})}
    report["files"] = _figures(reference, tflites, answer["models"])
    if web:
        report["web"] = _figures(reference, tflites, web_check.web_answers(reference["task"], tflites, inputs,
                                                                           **options))
    target = Path(out) if out else run / REPORT_FILE
    atomic.write_json(target, report)
    report["report_file"] = str(target)
    _record(tflites, report, target)
    return report


def _figures(reference: dict[str, Any], tflites: list[Path], results: list[dict[str, Any]]) -> dict[str, Any]:
    """compare() per file (compare_boxes for a detector); a file the runtime refused (e.g. missing metadata) keeps
    its error instead."""
    from dlpipe.pipelines.device_check_boxes import compare_boxes

    comparing = compare_boxes if reference["task"] == "detect" else compare
    return {tflite.name: {"error": result["error"]} if "error" in result else comparing(reference, result["answers"])
            for tflite, result in zip(tflites, results)}


def _record(tflites: list[Path], report: dict[str, Any], target: Path) -> None:
    """Each file's summary beside its export-time Keras parity in artifacts.json (the lists stay in the report)."""
    from dlpipe import run_lock

    with run_lock.hold(tflites[0].parent):  # not while a run or an export is writing that folder
        for tflite in tflites:
            for section, key in (("files", "mediapipe"), ("web", "mediapipe_web")):
                if section not in report:
                    continue
                figures = report[section][tflite.name]
                summary = {name: value for name, value in figures.items() if name not in ("disagreements", "unanswered")}
                if "disagreements" in figures:
                    summary.update(disagreements=len(figures["disagreements"]), unanswered=len(figures["unanswered"]))
                summary.update(data=report["data"], checked=report["checked"], reference=report["reference"],
                               report=str(target))
                if key == "mediapipe":
                    summary["mediapipe_version"] = report["mediapipe_version"]
                _set_in_record(tflite, key, summary)


def _set_in_record(artifact: Path, key: str, value: Any) -> None:
    """One field of the artifact's record in artifacts.json set, the rest (its export-time parity) kept."""
    import json

    manifest_path = artifacts.side_folder(artifact) / artifacts.MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    except (OSError, ValueError) as error:
        raise DataError(str(manifest_path), f"cannot be read ({error}); export the run again") from None
    manifest.setdefault(artifacts.record_key(artifact), {})[key] = value
    atomic.write_json(manifest_path, manifest)


def summary_lines(report: dict[str, Any], shown: int = 10) -> list[str]:
    """What the command prints: a line per file, then up to `shown` disagreements each."""
    lines = []
    runtimes = [(f"MediaPipe {report['mediapipe_version']}", report["files"])]
    if "web" in report:
        runtimes.append(("MediaPipe Web in Chromium", report["web"]))
    for runtime, files in runtimes:
        if report["task"] == "detect":
            from dlpipe.pipelines.device_check_boxes import summary_lines as box_lines

            lines += box_lines(runtime, files, shown)
        else:
            lines += _file_lines(runtime, files, shown, "photos" if report["task"] == "image" else "sentences")
    return lines


def _file_lines(runtime: str, files: dict[str, Any], shown: int, noun: str) -> list[str]:
    lines = []
    for name, figures in files.items():
        if "error" in figures:
            lines.append(f"{name}: {runtime} refused the file: {figures['error']}")
            continue
        agreement = figures["top1_agreement"]
        line = (f"{name}: {runtime} agrees with the Keras model on "
                f"{'-' if agreement is None else f'{agreement:.1%}'} of {figures['answered']} {noun}")
        if "keras_accuracy" in figures:
            line += f"; accuracy Keras {figures['keras_accuracy']:.3f}, {runtime} {figures['mediapipe_accuracy']:.3f}"
        if figures["unanswered"]:
            first = figures["unanswered"][0]
            line += f"; {len(figures['unanswered'])} it could not classify (first: {first['input']}: {first['error']})"
        lines.append(line)
        for row in figures["disagreements"][:shown]:
            shown_input = f"{row['input']} {row['text']!r}" if "text" in row else row["input"]
            lines.append(f"  {shown_input}: Keras {row['keras']} {row['keras_score']:.3f}, {runtime.split(' in ')[0]} "
                         f"{row['mediapipe']} {row['mediapipe_score']:.3f}" + (f" (label {row['label']})" if "label" in row else ""))
        if len(figures["disagreements"]) > shown:
            lines.append(f"  ... {len(figures['disagreements']) - shown} more in the report")
    return lines
