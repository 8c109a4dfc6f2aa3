"""`dlpipe runs DIR...`: what each run folder holds, side by side: task, data, the config keys that differ,
the main metric with its interval, training time and artifact sizes.

Read from the folders' files only (config.yaml, report.json, metrics.json, artifacts.json), so comparing runs
needs no TensorFlow. A folder that is not a finished run is listed with the reason instead of stopping the table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

# the headline of metrics.json, by preference: a multi-label model's micro F1 (its mAP is a second figure),
# a detector's mAP, a segmenter's mean IoU, a classifier's accuracy
MAIN_METRICS = ("micro_f1", "map", "mean_iou", "accuracy")
SHOWN_ELSEWHERE = {"pipeline", "task", "load.path", "load.val_path"}  # their own columns, or the data column
RUN_MARKERS = ("config.yaml", "report.json")


@dataclass
class RunRow:
    """One run folder's figures; `problem` says why a figure is missing (an empty string: none is)."""

    path: Path
    pipeline: str = ""
    task: str = ""
    data: str = ""
    status: str = ""
    metric: str = ""
    value: float | None = None
    interval: tuple[float, float] | None = None
    cross_validation: str = ""
    train_seconds: float | None = None
    total_seconds: float | None = None
    artifacts: dict[str, int] = field(default_factory=dict)  # file or folder -> bytes on disk
    config: dict[str, Any] = field(default_factory=dict)  # the flattened config.yaml
    tracking: str = ""  # the MLflow run it was logged to (tracking.json), if any
    problem: str = ""
    label: str = ""  # set by `label_runs` where two folders share a name

    @property
    def name(self) -> str:
        return self.label or self.path.name

    def metric_text(self) -> str:
        if self.value is None:
            return "-"
        shown = f"{self.metric} {self.value:.3f}"
        return shown + (f" ({self.interval[0]:.3f}-{self.interval[1]:.3f})" if self.interval else "")


def find_runs(places: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The run folders among `places` (a run folder, or a folder whose sub-folders are runs) and, for each place
    that holds none, why."""
    runs: list[Path] = []
    unusable: list[tuple[Path, str]] = []
    for place in map(Path, places):
        if not place.is_dir():
            unusable.append((place, "no such folder" if not place.exists() else "not a folder"))
        elif _is_run(place):
            runs.append(place)
        else:
            inside = sorted(child for child in place.iterdir() if child.is_dir() and _is_run(child))
            if inside:
                runs += inside
            else:
                unusable.append((place, "no run here (no config.yaml or report.json in it or its sub-folders)"))
    seen: set[Path] = set()
    unique = [run for run in runs if not (run.resolve() in seen or seen.add(run.resolve()))]
    return unique, unusable


def _is_run(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in RUN_MARKERS)


def read_run(folder: Path) -> RunRow:
    """A run folder's row; the first missing or unreadable file it needs is its `problem`."""
    row = RunRow(path=folder)
    config, why_config = _read(folder / "config.yaml", yaml.safe_load)
    report, why_report = _read(folder / "report.json", json.loads)
    metrics, why_metrics = _read(folder / "metrics.json", json.loads)
    artifacts, _ = _read(folder / "artifacts.json", json.loads)
    if isinstance(config, dict):
        row.config = dict(_flatten(config))
        row.data = str(row.config.get("load.path") or "")
    report = report if isinstance(report, dict) else {}
    row.pipeline = str(report.get("pipeline") or row.config.get("pipeline") or "")
    row.task = str(report.get("task") or row.config.get("task") or "")
    row.status, stopped = _status(report)
    _times(row, report.get("stages") or {})
    if isinstance(metrics, dict):
        _headline(row, metrics)
    tracked, _ = _read(folder / "tracking.json", json.loads)
    if isinstance(tracked, dict):
        row.tracking = f"MLflow run {tracked.get('run_id', '?')} in {tracked.get('tracking_uri', '?')}"
    if isinstance(artifacts, dict):
        row.artifacts = {name: _size(folder / name) for name in artifacts if (folder / name).exists()}
    row.problem = why_config or why_report or stopped or why_metrics or (
        "" if row.value is not None else "metrics.json has no headline figure")
    return row


def label_runs(rows: list[RunRow]) -> list[RunRow]:
    """Name each run by its folder, or by parent/folder where two runs' folders share a name."""
    names = [row.path.name for row in rows]
    for row in rows:
        if names.count(row.path.name) > 1:
            row.label = f"{row.path.resolve().parent.name}/{row.path.name}"
    return rows


def _read(path: Path, parse: Any) -> tuple[Any, str]:
    """(parsed content, '') or (None, why not)."""
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        return parse(path.read_text(encoding="utf-8")), ""
    except (OSError, ValueError, yaml.YAMLError) as error:
        return None, f"{path.name} unreadable ({type(error).__name__})"


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _status(report: dict[str, Any]) -> tuple[str, str]:
    """('finished' or what stopped it, the problem to list or '')."""
    stages = report.get("stages") or {}
    failed = [(name, info) for name, info in stages.items()
              if isinstance(info, dict) and info.get("status") == "failed"]
    if failed:
        name, info = failed[0]
        return f"failed in {name}", f"stage {name} failed: {info.get('error', '?')}"
    if report and not report.get("finished"):
        return "not finished", "not finished (still running, or killed: dlpipe run ... --resume)"
    return ("finished", "") if report else ("", "")


def _times(row: RunRow, stages: dict[str, Any]) -> None:
    seconds = [info.get("seconds") for info in stages.values() if isinstance(info, dict)]
    numbers = [s for s in seconds if isinstance(s, (int, float))]
    row.total_seconds = float(sum(numbers)) if numbers else None
    train = stages.get("train")
    if isinstance(train, dict) and isinstance(train.get("seconds"), (int, float)):
        row.train_seconds = float(train["seconds"])


def _headline(row: RunRow, metrics: dict[str, Any]) -> None:
    """The main metric with its 95% interval, and the pooled cross-validation figure when the run has one."""
    fid = metrics.get("fid_per_epoch")
    if isinstance(fid, list) and fid and _number(fid[-1]):  # a GAN: the last epoch's Fréchet distance, lower is better
        row.metric, row.value = "FID", float(fid[-1])
        return
    name = next((key for key in MAIN_METRICS if _number(metrics.get(key))), None)
    if name is None:
        return
    row.metric, row.value, row.interval = name, float(metrics[name]), _pair(metrics.get(f"{name}_interval"))
    cv = metrics.get("cross_validation")
    pooled = cv.get("pooled") if isinstance(cv, dict) else None
    if isinstance(pooled, dict) and _number(pooled.get(name)):
        interval = _pair(pooled.get(f"{name}_interval"))
        row.cross_validation = (f"pooled {pooled[name]:.3f}"
                                + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else ""))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_number(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def differing_keys(rows: list[RunRow]) -> list[str]:
    """Config keys that at least two runs set and that do not hold one value across the runs that set them
    (a key only one pipeline has is that pipeline's, not a difference)."""
    keys: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row.config.items():
            keys.setdefault(key, []).append(json.dumps(value, sort_keys=True, default=str))
    return [key for key, values in keys.items()
            if key not in SHOWN_ELSEWHERE and len(values) >= 2 and len(set(values)) > 1]


def config_value(row: RunRow, key: str) -> str:
    if key not in row.config:
        return "-"
    value = row.config[key]
    return json.dumps(value) if isinstance(value, (list, dict)) else "null" if value is None else str(value)


def size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def artifacts_text(row: RunRow) -> str:
    return ", ".join(f"{name} {size_text(size)}" for name, size in row.artifacts.items()) or "-"


def summary_rows(rows: list[RunRow]) -> tuple[list[str], list[list[str]]]:
    """The comparison table's header and one line per run, as text (the console's and the page's)."""
    header = ["run", "task", "data", "main metric (95% interval)", "train", "total", "artifacts"]
    with_cv = any(row.cross_validation for row in rows)
    if with_cv:
        header.insert(4, "cross-validation")
    lines = []
    for row in rows:
        line = [row.name, row.task or row.pipeline or "-", row.data or "-", row.metric_text(),
                seconds_text(row.train_seconds), seconds_text(row.total_seconds), artifacts_text(row)]
        if with_cv:
            line.insert(4, row.cross_validation or "-")
        lines.append(line)
    return header, lines


def text_table(header: list[str], lines: list[list[str]]) -> str:
    """Columns padded to their widest cell, for the console."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [header, *lines])


def console_report(rows: list[RunRow], unusable: list[tuple[Path, str]]) -> str:
    """The console's text: the comparison, the config keys that differ (one row per key), the problems."""
    parts = []
    compared = [row for row in rows if row.value is not None or not row.problem]
    if compared:
        parts.append(text_table(*summary_rows(compared)))
        keys = differing_keys(compared)
        if keys:
            parts.append("config that differs:\n" + text_table(
                ["key", *(row.name for row in compared)], [[key, *(config_value(row, key) for row in compared)]
                                                           for key in keys]))
        elif len(compared) > 1:
            parts.append("config that differs: none (the same config; data aside)")
    problems = [(row.path, row.problem) for row in rows if row.problem] + unusable
    if problems:
        parts.append("not compared or incomplete:\n" + "\n".join(f"  {path}: {why}" for path, why in problems))
    return "\n\n".join(parts) if parts else "no runs"
