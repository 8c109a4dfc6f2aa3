"""OUT/report.html: one self-contained page that shows a run: its data, metrics, curves, artifacts, worst errors.

Built from the run folder's files only (report.json, metrics.json, cv.json, artifacts.json and the PNGs), so
`dlpipe report RUN` rebuilds the page of any run, old ones included, without TensorFlow. Missing files leave
their section out; the page fetches nothing (CSS inline, pictures as data URIs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlpipe import atomic
from dlpipe.errors import RunStateError
from dlpipe.pipelines.report_gallery import gallery_section
from dlpipe.pipelines.report_html import esc, figure, page, paragraph, section, table

REPORT_PAGE = "report.html"
PICTURES = [("training_curves.png", "training curves: loss and accuracy per epoch"),
            ("confusion_matrix.png", "confusion matrix on the validation split (rows: true class)"),
            ("reliability.png", "calibration: confidence against accuracy, before and after temperature scaling"),
            ("cross_validation.png", "cross-validation: each fold's figure"),
            ("sample_predictions.png", "validation images, true and predicted masks"),
            ("pr_curves.png", "precision against recall per class (detection, IoU 0.5)"),
            ("sample_detections.png", "validation photos with their true boxes and the detections kept"),
            ("samples.png", "generated samples"),
            ("lr_find.png", "learning-rate sweep")]
SKIPPED_SHOWN = 200  # rows of the skipped-files table; the rest are counted


def write_report_page(run_dir: str | Path) -> Path:
    """Write RUN/report.html (atomically) from the run folder's files; returns its path."""
    run = Path(run_dir)
    report = _read_json(run / "report.json")
    if report is None:
        raise RunStateError(f"{run}: no run here (no report.json); give the folder a `dlpipe run` wrote")
    metrics = _read_json(run / "metrics.json") or {}
    task = str(report.get("task", ""))
    title = f"dlpipe run: {report.get('pipeline', '?')} ({run.resolve().name})"
    subtitle = (f"task {task}; started {report.get('started', '?')}, finished {report.get('finished', 'not yet')}; "
                f"dlpipe {report.get('versions', {}).get('dlpipe', '?')}; folder {run.resolve()}")
    sections = [
        data_section(report.get("data") or {}),
        metrics_section(metrics),
        cross_validation_section(_read_json(run / "cv.json") or metrics.get("cross_validation")),
        pictures_section(run),
        gallery_section(task, metrics, run, _read_json(run / "explain" / "explain.json")),
        doctor_section(run),
        artifacts_section(run, _read_json(run / "artifacts.json") or {}),
        stages_section(report.get("stages") or {}),
    ]
    path = run / REPORT_PAGE
    atomic.write_text(path, page(title, subtitle, sections))
    return path


def doctor_section(run: Path, shown: int = 30) -> str:
    """The run's data doctor (doctor.csv, pipelines/run_doctor.py): findings per problem, then the first rows."""
    import csv

    from dlpipe.pipelines.doctor_page import CSV_FILE, HTML_FILE, PROBLEM_HEADINGS

    try:
        with open(run / CSV_FILE, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, ValueError, csv.Error):
        return ""
    counts = {problem: sum(row.get("problem") == problem for row in rows) for problem in PROBLEM_HEADINGS}
    summary = table(["problem", "found"], [(heading, counts[p]) for p, heading in PROBLEM_HEADINGS.items() if counts[p]])
    listed = table(["path", "problem", "detail", "suggested action"],
                   [(r.get("path"), PROBLEM_HEADINGS.get(r.get("problem", ""), r.get("problem")), r.get("detail"),
                     r.get("suggested action")) for r in rows[:shown]])
    more = f" The first {shown} of {len(rows)} are listed here." if len(rows) > shown else ""
    if not rows:
        return section("Data doctor", paragraph(
            "The run's own data check found nothing: no copies across the split or the classes, no likely label "
            "error in the held-out predictions, no class under a third of the largest."))
    lead = (f"<p>{esc(f'{len(rows)} findings in this run' + chr(39) + 's data (method and thumbnails: ')}"
            f'<a href="{HTML_FILE}">{HTML_FILE}</a>{esc(f"; {CSV_FILE} is ready for --set load.exclude={CSV_FILE}).{more}")}</p>')
    return section("Data doctor", lead, summary, listed)


def _read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable (a run killed mid-way still gets a page)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def data_section(data: dict[str, Any]) -> str:
    """Counts per class (or label), the other figures the load stage recorded, skipped files with reasons."""
    parts = []
    for key in ("classes", "labels", "pixels_per_class"):
        counts = data.get(key)
        if isinstance(counts, dict):
            parts.append(table([key.replace("_", " ").rstrip("s") if key != "classes" else "class", "count"],
                               counts.items()))
        elif isinstance(counts, list):
            parts.append(paragraph(f"{key}: " + ", ".join(map(str, counts))))
    scalars = [(key.replace("_", " "), value) for key, value in data.items()
               if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    parts.append(table(["figure", "value"], scalars))
    skipped = [item for item in data.get("skipped", []) if isinstance(item, dict)]
    if skipped:
        rows = [(item.get("path", ""), item.get("line", ""), item.get("reason", "")) for item in skipped[:SKIPPED_SHOWN]]
        parts.append(f"<h3>Skipped ({len(skipped)})</h3>" + table(["file", "line", "reason"], rows))
        if len(skipped) > SKIPPED_SHOWN:
            parts.append(paragraph(f"... and {len(skipped) - SKIPPED_SHOWN} more (see report.json)", "note"))
    elif "skipped" in data:
        parts.append(paragraph("No file was skipped."))
    notes = [item for item in data.get("notes", []) if isinstance(item, dict)]
    if notes:
        parts.append("<h3>Notes</h3>" + table(["file", "note"], [(n.get("path", ""), n.get("note", "")) for n in notes]))
    return section("Data", *parts)


def metrics_section(metrics: dict[str, Any]) -> str:
    """Every headline figure with its 95% interval, then the per-class table and the notes."""
    if not metrics:
        return ""
    rows = figure_rows({key: value for key, value in metrics.items() if not key.startswith("min_")})
    parts = [table(["metric", "value", "95% interval"], rows)]
    if "passed" in metrics:
        gate = {k: v for k, v in metrics.items() if k.startswith("min_")}
        limits = ", ".join(f"{key} {value}" for key, value in gate.items())
        parts.append(paragraph(f"quality gate ({limits}): {'passed' if metrics['passed'] else 'FAILED'}"))
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        columns = sorted({k for row in per_class.values() if isinstance(row, dict) for k in row
                          if not isinstance(row[k], (list, dict))})
        parts.append(table(["class", *columns], ([name, *(row.get(c) for c in columns)]
                                                 for name, row in per_class.items() if isinstance(row, dict))))
    for key in ("note", "split", "resolution", "tta"):
        if isinstance(metrics.get(key), str):
            parts.append(paragraph(f"{key}: {metrics[key]}", "note"))
    for key in ("probe_baseline", "calibration", "refit", "unknown"):  # what the figures above compare with or rest on
        if isinstance(metrics.get(key), dict):
            title = key.replace("_", " ")
            parts.append(table([title, "value", "95% interval"], figure_rows(metrics[key])))
            words = [f"{name}: {value}" for name, value in metrics[key].items() if isinstance(value, str)]
            if words:
                parts.append(paragraph(f"{title}: " + "; ".join(words), "note"))
    return section("Metrics (validation)", *parts)


def _is_pair(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) for v in value))


def cross_validation_section(cv: Any) -> str:
    """cv.json: the pooled figures (the estimate to trust) with their intervals, the fold mean and sd, one row per
    fold."""
    if not isinstance(cv, dict):
        return ""
    rows = []
    for key, value in cv.items():
        if isinstance(value, dict) and key != "per_fold":  # e.g. pooled: figures over every out-of-fold prediction
            rows += [(f"{key} {name}", number, shown) for name, number, shown in figure_rows(value)]
    rows += figure_rows({key: value for key, value in cv.items() if not isinstance(value, dict)})
    parts = [table(["figure", "value", "95% interval"], rows)]
    folds = [fold for fold in cv.get("per_fold", []) if isinstance(fold, dict)]
    if folds:
        columns = [key for key in folds[0] if not isinstance(folds[0][key], (list, dict))]
        parts.append(table(columns, ([fold.get(c) for c in columns] for fold in folds)))
    if isinstance(cv.get("note"), str):
        parts.append(paragraph(cv["note"], "note"))
    return section("Cross-validation", *parts)


def figure_rows(figures: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(name, value, its 95% interval or '') for each number of `figures` (a `NAME_interval` pair goes with NAME)."""
    rows = []
    for key, value in figures.items():
        if isinstance(value, bool) or key.endswith("_interval") or not isinstance(value, (int, float)):
            continue
        interval = figures.get(f"{key}_interval")
        rows.append((key.replace("_", " "), value, f"{interval[0]:.3f} - {interval[1]:.3f}" if _is_pair(interval) else ""))
    return rows


def pictures_section(run: Path) -> str:
    """The plots the run wrote, embedded."""
    figures = [figure(run / name, caption) for name, caption in PICTURES if (run / name).is_file()]
    return section("Plots", *figures)


def artifacts_section(run: Path, records: dict[str, Any]) -> str:
    """artifacts.json as a table: file, format, size on disk and the export-time parity check."""
    rows = []
    for name, record in records.items():
        if not isinstance(record, dict):
            continue
        parity = record.get("parity") if isinstance(record.get("parity"), dict) else None
        seconds = parity.get("seconds_per_item") if parity else None
        rows.append((name, record.get("format", ""), _size_text(run / name),
                     parity.get("top1_agreement") if parity else "not checked",
                     parity.get("max_abs_diff") if parity else None,
                     parity.get("accuracy") if parity else None,
                     round(seconds * 1000, 3) if isinstance(seconds, (int, float)) else None,
                     _mediapipe_text(record.get("mediapipe"))))
    if not rows:
        return ""
    note = paragraph("parity: the written file loaded back and compared with the Keras model on validation "
                     "inputs (top-1 agreement, largest score difference, its accuracy, milliseconds per input).",
                     "note")
    device = paragraph("MediaPipe: the file in MediaPipe Tasks on raw inputs (dlpipe check-device, or "
                       "export.device_check on the validation inputs): its top-1 agreement with the Keras model.", "note")
    header = ["file", "format", "size", "top-1 agreement", "max |diff|", "accuracy", "ms per input", "MediaPipe"]
    return section("Artifacts", table(header, rows), note, device)


def _mediapipe_text(device: Any) -> str:
    """'0.996 of 245 (DATA)' from a record's "mediapipe" entry; '' when the file was never run in MediaPipe."""
    if not isinstance(device, dict):
        return ""
    if device.get("top1_agreement") is None:
        return f"not compared: {device.get('error', 'nothing answered')}"
    return f"{device['top1_agreement']:.3f} of {device.get('answered')} ({device.get('data')})"


def _size_text(path: Path) -> str:
    """A file's or folder's size in MB ('missing' when the run folder no longer holds it)."""
    if path.is_file():
        size = path.stat().st_size
    elif path.is_dir():
        size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    else:
        return "missing"
    return f"{size / 1e6:.2f} MB" if size >= 10_000 else f"{size:,} bytes"


def stages_section(stages: dict[str, Any]) -> str:
    """What each stage did and how long it took (report.json)."""
    rows = [(name, info.get("status", ""), info.get("seconds"), info.get("summary") or info.get("error", ""))
            for name, info in stages.items() if isinstance(info, dict)]
    return section("Stages", table(["stage", "status", "seconds", "summary"], rows))

