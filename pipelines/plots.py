"""PNG plots a person would rather look at than a JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlpipe import atomic  # noqa: E402


def plot_training_curves(phases: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Loss and accuracy per epoch, train and validation, with phase boundaries marked."""
    keys = sorted({key for phase in phases for key in phase["history"]})
    series: dict[str, list[float]] = {key: [] for key in keys}
    boundaries = []
    for phase in phases:
        history = phase["history"]
        length = len(history.get("loss", []))
        if not length:
            continue
        for key in keys:
            series[key].extend(history.get(key, [np.nan] * length)[:length])
        boundaries.append((len(series["loss"]), phase["name"]))
    if not series.get("loss"):
        return None
    metrics = [metric for metric in ("loss", "accuracy") if metric in series]  # a detector has no accuracy
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        epochs = np.arange(1, len(series.get(metric, [])) + 1)
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in series:
                axis.plot(epochs, series[key], style, markersize=3, label=key)
        start = 0
        for end, name in boundaries:
            if len(boundaries) > 1:
                axis.axvline(end + 0.5, color="grey", linestyle=":", linewidth=1)
                axis.text((start + end) / 2 + 0.5, axis.get_ylim()[1], name, ha="center", va="bottom", fontsize=8)
            start = end
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(matrix: list[list[int]], class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Counts per (true, predicted) cell, with row-normalised shading."""
    counts = np.asarray(matrix)
    rows = counts.sum(axis=1, keepdims=True)
    shade = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, axis = plt.subplots(figsize=(size, size))
    axis.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            axis.text(j, i, str(counts[i, j]), ha="center", va="center", color="white" if shade[i, j] > 0.5 else "black")
    axis.set_title(title or "confusion matrix")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    with atomic.replacing_file(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_lr_find(result: dict[str, Any], path: str | Path) -> Path:
    """Loss against learning rate (log scale) of a finder sweep, with its suggestions marked."""
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot(result["rates"], result["losses"], color="0.75", linewidth=0.8, label="loss per step")
    axis.plot(result["rates"], result["smoothed"], color="C0", label="smoothed loss")
    marks = (("minimum", "loss minimum", "C2"), ("steepest", "steepest descent", "C1"), ("chosen", "chosen", "C3"))
    for key, label, colour in marks:
        axis.axvline(result[key], color=colour, linestyle="--", linewidth=1, label=f"{label}: {result[key]:.2g}")
    axis.set_xscale("log")
    low, high = np.nanmin(result["smoothed"]), np.nanmax(result["smoothed"][: max(3, len(result["smoothed"]) * 9 // 10)])
    axis.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss")
    axis.set_title(f"learning-rate finder ({result['steps']} steps, {result.get('trains', 'model')})")
    axis.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_cross_validation(summary: dict[str, Any], path: str | Path) -> Path:
    """Accuracy per fold with its 95% interval, the pooled estimate's band and the linear probe's folds."""
    folds = summary["per_fold"]
    fig, axis = plt.subplots(figsize=(max(5, 1.0 * len(folds) + 3), 4))
    x = np.arange(1, len(folds) + 1)
    accuracy = np.asarray([f["accuracy"] for f in folds])
    errors = np.abs(np.asarray([f["accuracy_interval"] for f in folds]).T - accuracy)
    axis.errorbar(x, accuracy, yerr=errors, fmt="o", capsize=4, label="run (fold accuracy, 95% interval)")
    probes = [f.get("probe_accuracy") for f in folds]
    if all(p is not None for p in probes):
        axis.plot(x + 0.15, probes, "s", color="C1", label="linear probe")
    pooled = summary["pooled"]
    low, high = pooled["accuracy_interval"]
    axis.axhspan(low, high, color="C0", alpha=0.12, label=f"pooled {pooled['accuracy']:.3f} ({low:.3f}-{high:.3f})")
    axis.axhline(pooled["accuracy"], color="C0", linewidth=1)
    axis.set_xticks(x)
    axis.set_xlabel("fold")
    axis.set_ylabel("validation accuracy")
    axis.set_title(f"{len(folds)}-fold cross-validation")
    axis.set_ylim(max(0.0, min(accuracy.min(), low) - 0.1), 1.01)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_fold_scores(scores: list[float | None], pooled: float | None, interval: list[float] | None, metric: str,
                     path: str | Path) -> Path:
    """A score per fold of a cross-validation, with the pooled estimate's interval as a band (e.g. mAP)."""
    fig, axis = plt.subplots(figsize=(max(5, len(scores) + 3), 4))
    axis.plot(range(1, len(scores) + 1), [np.nan if s is None else s for s in scores], "o", label=f"fold {metric}")
    if interval and pooled is not None:
        low, high = interval
        axis.axhspan(low, high, alpha=0.12, label=f"pooled {metric} {pooled:.3f} ({low:.3f}-{high:.3f})")
    axis.set_xlabel("fold")
    axis.set_ylabel(f"validation {metric}")
    axis.set_ylim(0, 1.01)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_trials(trials: list[tuple[int, float]], path: str | Path, metric: str = "score") -> Path:
    """Each finished trial's score in order, with the best so far."""
    trials = sorted(trials)
    numbers = [n for n, _ in trials]
    values = [v for _, v in trials]
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot(numbers, values, "o", label="trial")
    axis.step(numbers, np.maximum.accumulate(values), where="post", color="C1", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(metric)
    axis.set_title(f"dlpipe tune: {len(trials)} trials")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(calibration: dict[str, Any], path: str | Path) -> Path:
    """Reliability diagram: accuracy against mean top score per bin, before and after temperature scaling."""
    fig, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    for key, style, what in (("reliability_before", "-o", "before"), ("reliability_after", "-s", "after")):
        rows = [row for row in calibration[key] if row["count"]]
        ece = calibration[key.replace("reliability", "ece")]
        axis.plot([row["confidence"] for row in rows], [row["accuracy"] for row in rows], style, markersize=4,
                  label=f"{what} (ECE {ece:.3f})" + (f", T = {calibration['temperature']:.2f}" if what == "after" else ""))
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("mean top score in the bin")
    axis.set_ylabel("accuracy in the bin")
    axis.set_title(f"reliability on {calibration['count']} held-out predictions", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)
