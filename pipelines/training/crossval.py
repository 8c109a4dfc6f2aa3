"""`train.cv_folds: K`: stratified K-fold cross-validation of a pipeline's recipe, before its final run.

Each fold is an ordinary run in OUT/folds/K/ (its own config.yaml, checkpoints
and metrics.json) whose validation set is one stratified fold, so a killed
cross-validation resumed with `--resume` skips the folds that finished and
continues the one that did not. Folds never refit and never export: they
measure the recipe. The summary (cv.json, and `cross_validation` in the final
run's metrics.json) holds the mean and standard deviation over folds, each
fold's figures and the pooled accuracy (every photo predicted once, by the fold
model that did not train on it) with its Wilson interval: the number to trust.
Backbone features (linear probe, learning-rate finder) are cached once in
OUT/features/ for all folds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from dlpipe import atomic
from dlpipe.errors import ConfigError
from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.config import ResolvedConfig
from dlpipe.pipelines.engine import CONFIG_FILE, REPORT_FILE, run_pipeline

FOLDS_DIR = "folds"
CV_FILE = "cv.json"
FEATURES_DIR = "features"


def fold_config(config: ResolvedConfig, folds: int, fold: int) -> ResolvedConfig:
    """The config of one fold's run: fold `fold` of `folds` validates; no refit, no export, no nested CV."""
    sections = dict(config.sections)
    sections["load"] = dataclasses.replace(sections["load"], folds=folds, fold=fold)
    sections["train"] = dataclasses.replace(sections["train"], cv_folds=0, refit=False)
    stages = tuple(stage for stage in config.stages if stage != "export")
    return dataclasses.replace(config, sections=sections, stages=stages)


def check_cross_validation(config: ResolvedConfig) -> int:
    """The fold count, after checking the pipeline can be cross-validated as configured (0: off)."""
    folds = getattr(config["train"], "cv_folds", 0) if "train" in config.sections else 0
    if not folds:
        return 0
    load = config.sections.get("load")
    if load is None or not hasattr(load, "folds"):
        raise ConfigError("train.cv_folds", f"the {config.pipeline} pipeline's load stage cannot split folds yet; "
                                            "set train.cv_folds=0")
    path = str(getattr(load, "path", "") or "")
    if getattr(load, "val_path", None) or path.startswith("builtin:"):
        raise ConfigError("train.cv_folds", "cross-validation splits one folder into folds; drop load.val_path "
                                            "(built-in datasets keep their own test split)")
    return int(folds)


def run_cross_validation(spec: PipelineSpec, config: ResolvedConfig, out_dir: Path, resume: bool = False,
                         echo: Callable[[str], None] = print, callbacks: Iterable[Any] = ()) -> dict[str, Any]:
    """Run (or resume) every fold and return the summary, also written to OUT/cv.json and plotted."""
    folds = check_cross_validation(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / CONFIG_FILE, config.to_yaml())  # so a kill during the folds can be resumed
    results = []
    for fold in range(folds):
        fold_dir = out_dir / FOLDS_DIR / str(fold)
        label = f"fold {fold + 1}/{folds}"
        if fold_finished(fold_dir):
            metrics = json.loads((fold_dir / "metrics.json").read_text(encoding="utf-8"))
            if "train_cpu_seconds" not in metrics:
                stages = json.loads((fold_dir / REPORT_FILE).read_text(encoding="utf-8")).get("stages", {})
                metrics["train_cpu_seconds"] = stages.get("train", {}).get("cpu_seconds")
            echo(f"{label}: finished earlier, skipped")
        else:
            echo(f"{label}: training on the other {folds - 1} folds ({fold_dir})")
            started = time.perf_counter()
            ctx = run_pipeline(spec, fold_config(config, folds, fold), fold_dir,
                               resume=(fold_dir / CONFIG_FILE).is_file(), echo=lambda line: echo(f"  {line}"),
                               callbacks=callbacks, cache_dir=out_dir / FEATURES_DIR)
            metrics = ctx.metrics
            metrics["seconds"] = round(time.perf_counter() - started, 1)
            metrics["train_cpu_seconds"] = ctx.report["stages"].get("train", {}).get("cpu_seconds")
            atomic.write_json(fold_dir / "metrics.json", metrics)
        results.append(metrics)
        echo(f"{label}: {(spec.cv_report or CLASSIFIER_REPORT).fold_line(metrics)}")
    report = spec.cv_report or CLASSIFIER_REPORT
    summary = report.summarize(results)
    atomic.write_json(out_dir / CV_FILE, summary)
    report.plot(summary, out_dir / "cross_validation.png")
    echo(report.summary_line(summary))
    return summary


def fold_finished(fold_dir: Path) -> bool:
    """A fold is done when its run finished and wrote its metrics."""
    report = fold_dir / REPORT_FILE
    if not report.is_file() or not (fold_dir / "metrics.json").is_file():
        return False
    try:
        return "finished" in json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd over folds, per-fold figures and the pooled accuracy with its interval, for the run and its probe."""
    summary: dict[str, Any] = {"folds": len(results), **_aggregate([_counts(m) for m in results])}
    summary["per_fold"] = [
        {"fold": i, "accuracy": m["accuracy"], "count": m["count"], "accuracy_interval": m["accuracy_interval"],
         "macro_f1": m.get("macro_f1"), "seconds": m.get("seconds"), "cpu_seconds": m.get("train_cpu_seconds"),
         "probe_accuracy": m.get("probe_baseline", {}).get("accuracy")}
        for i, m in enumerate(results)
    ]
    probes = [m.get("probe_baseline", {}) for m in results]
    if all(p.get("correct") is not None for p in probes):
        summary["probe_baseline"] = _aggregate([(p["correct"], p["count"], p["accuracy"]) for p in probes])
    summary["note"] = ("pooled: every image predicted once by the fold model that did not train on it; its 95% "
                       "interval is the estimate to trust. The final run's own validation figure rests on one "
                       "small split.")
    return summary


def _counts(metrics: dict[str, Any]) -> tuple[int, int, float]:
    correct = int(np.trace(np.asarray(metrics["confusion_matrix"])))
    return correct, int(metrics["count"]), float(metrics["accuracy"])


def _aggregate(rows: list[tuple[int, int, float]]) -> dict[str, Any]:
    from dlpipe.models.metrics import wilson_interval

    accuracies = np.asarray([r[2] for r in rows])
    correct, count = sum(r[0] for r in rows), sum(r[1] for r in rows)
    return {
        "accuracy_mean": float(accuracies.mean()),
        "accuracy_sd": float(accuracies.std(ddof=1)) if len(rows) > 1 else 0.0,
        "pooled": {"accuracy": correct / count if count else 0.0, "correct": correct, "count": count,
                   "accuracy_interval": list(wilson_interval(correct, count))},
    }


def fold_line(metrics: dict[str, Any]) -> str:
    low, high = metrics["accuracy_interval"]
    line = f"accuracy {metrics['accuracy']:.3f} ({low:.3f}-{high:.3f}) on {metrics['count']}"
    probe = metrics.get("probe_baseline", {}).get("accuracy")
    return line + (f", linear probe {probe:.3f}" if probe is not None else "")


def summary_line(summary: dict[str, Any]) -> str:
    pooled = summary["pooled"]
    low, high = pooled["accuracy_interval"]
    line = (f"cross-validation ({summary['folds']} folds): accuracy {summary['accuracy_mean']:.3f} ± "
            f"{summary['accuracy_sd']:.3f} (mean ± sd); pooled {pooled['correct']}/{pooled['count']} = "
            f"{pooled['accuracy']:.3f} (95% interval {low:.3f}-{high:.3f})")
    probe = summary.get("probe_baseline")
    if probe:
        line += (f"; linear probe {probe['accuracy_mean']:.3f} ± {probe['accuracy_sd']:.3f}, pooled "
                 f"{probe['pooled']['accuracy']:.3f}")
    return line


def _plot_accuracy(summary: dict[str, Any], path: Path) -> None:
    from dlpipe.pipelines.plots import plot_cross_validation

    plot_cross_validation(summary, path)


def interval_text(pooled: dict[str, Any], key: str) -> str:
    """" (95% interval low-high)" of pooled[key + "_interval"], or nothing when there is none."""
    bounds = pooled.get(f"{key}_interval")
    return f" (95% interval {bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""


def plot_pooled_map(summary: dict[str, Any], path: Path) -> None:
    """mAP per fold, with the pooled estimate's interval as a band (multi-label and detection reports)."""
    from dlpipe.pipelines.plots import plot_fold_scores

    pooled = summary["pooled"]
    plot_fold_scores([f["map"] for f in summary["per_fold"]], pooled["map"], pooled.get("map_interval"), "mAP", path)


def pooled_map_score(summary: dict[str, Any]) -> tuple[float, float]:
    """What `dlpipe tune` maximises for a report pooled on mAP: (pooled mAP, sd of the folds' mAP)."""
    return summary["pooled"]["map"], summary["map_sd"]


@dataclass(frozen=True)
class CrossValidationReport:
    """How a task pools its folds' metrics.json into one summary, and prints and plots it."""

    summarize: Callable[[list[dict[str, Any]]], dict[str, Any]]
    fold_line: Callable[[dict[str, Any]], str]
    summary_line: Callable[[dict[str, Any]], str]
    plot: Callable[[dict[str, Any], Path], None]
    score: Callable[[dict[str, Any]], tuple[float, float]]  # what `dlpipe tune` maximises: (pooled value, sd over folds)


# Classifiers (one label per example): accuracy per fold and pooled, with Wilson intervals.
CLASSIFIER_REPORT = CrossValidationReport(summarize, fold_line, summary_line, _plot_accuracy,
                                          lambda summary: (summary["pooled"]["accuracy"], summary["accuracy_sd"]))
