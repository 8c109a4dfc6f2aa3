"""Multi-label metrics: mean average precision, micro and macro F1 at per-label thresholds, with bootstrap intervals.

Scores are per-label sigmoid outputs (n, labels); truth is multi-hot (n, labels). Intervals resample whole
photos (seeded), so they say what a dataset of this size allows. Thresholds are chosen per label to maximise that
label's F1 on predictions the model did not train on (validation or out-of-fold); `crossfit_thresholds` chooses
each fold's thresholds on the other folds, so the F1 it reports is not measured on the data that chose them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5  # a label never (or always) present gives no evidence: keep the sigmoid's midpoint


def average_precisions(truth: np.ndarray, scores: np.ndarray) -> list[float | None]:
    """Average precision per label, as scikit-learn's average_precision_score (None for a label with no positive
    photo: undefined). In NumPy, because the bootstrap calls it a thousand times per report."""
    truth, scores = np.asarray(truth), np.asarray(scores, np.float64)
    return [average_precision(truth[:, j], scores[:, j]) for j in range(truth.shape[1])]


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """One label's AP: the precision at each distinct score, weighted by the recall it adds."""
    truth = np.asarray(truth) > 0
    if not truth.any():
        return None
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    ranked, hits = np.asarray(scores, np.float64)[order], np.cumsum(truth[order])
    ends = _tie_ends(ranked)  # a cut can only fall between two different scores
    precision = hits[ends] / (ends + 1)
    recall = hits[ends] / hits[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _tie_ends(ranked: np.ndarray) -> np.ndarray:
    """Indices of the last score of each run of equal scores in a descending array."""
    return np.append(np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1)


def mean_average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """mAP: the mean of the defined per-label average precisions."""
    defined = [ap for ap in average_precisions(truth, scores) if ap is not None]
    return float(np.mean(defined)) if defined else None


def choose_thresholds(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per label, the threshold that maximises its F1 on these predictions (midway between two scores).

    Photos with equal scores are kept or dropped together, as `score >= threshold` decides them (saturated
    sigmoids tie at 1.0). A label never present, or present in every photo, keeps DEFAULT_THRESHOLD."""
    truth, scores = np.asarray(truth), np.asarray(scores, np.float64)
    thresholds = np.full(truth.shape[1], DEFAULT_THRESHOLD)
    for j in range(truth.shape[1]):
        positives = int(truth[:, j].sum())
        if positives in (0, len(truth)):
            continue
        order = np.argsort(-scores[:, j], kind="mergesort")
        ranked, hits = scores[order, j], np.cumsum(truth[order, j])
        ends = _tie_ends(ranked)
        f1 = 2 * hits[ends] / (ends + 1 + positives)  # keeping every photo scored at least ranked[end]
        best = int(ends[np.argmax(f1)])
        below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best] - 1e-6
        thresholds[j] = float((ranked[best] + below) / 2)
    return np.clip(thresholds, 1e-6, 1 - 1e-6)


def crossfit_thresholds(truth: np.ndarray, scores: np.ndarray, fold_of: Sequence[int]) -> np.ndarray:
    """(n, labels) thresholds: each photo's from `choose_thresholds` on the photos of the other folds."""
    fold_of = np.asarray(fold_of)
    out = np.empty(np.shape(scores), np.float64)
    for fold in np.unique(fold_of):
        others = fold_of != fold
        out[fold_of == fold] = choose_thresholds(np.asarray(truth)[others], np.asarray(scores)[others])
    return out


def f1_scores(truth: np.ndarray, decided: np.ndarray) -> tuple[float, float, dict[str, np.ndarray]]:
    """(micro F1, macro F1, per-label precision/recall/f1 arrays) of 0/1 decisions against the truth."""
    truth, decided = np.asarray(truth, bool), np.asarray(decided, bool)
    tp = (truth & decided).sum(axis=0).astype(np.float64)
    fp = (~truth & decided).sum(axis=0).astype(np.float64)
    fn = (truth & ~decided).sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / total) if total else 0.0
    return micro, float(f1.mean()), {"precision": precision, "recall": recall, "f1": f1}


def multilabel_report(truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, class_names: list[str],
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """mAP, micro and macro F1 (at `thresholds`: one per label, or one row per photo) with 95% bootstrap
    intervals over photos, and per-label AP, precision, recall, F1, threshold and support."""
    truth, scores = np.asarray(truth, np.int64), np.asarray(scores, np.float64)
    limits = np.broadcast_to(np.asarray(thresholds, np.float64), scores.shape)
    decided = scores >= limits
    micro, macro, per = f1_scores(truth, decided)
    aps = average_precisions(truth, scores)
    report: dict[str, Any] = {"count": int(len(truth)), "map": mean_average_precision(truth, scores),
                              "micro_f1": micro, "macro_f1": macro}
    report.update(_intervals(truth, scores, decided, resamples, seed))
    per_threshold = np.asarray(thresholds, np.float64)
    report["per_label"] = {
        name: {"ap": aps[j], "precision": float(per["precision"][j]), "recall": float(per["recall"][j]),
               "f1": float(per["f1"][j]), "support": int(truth[:, j].sum()),
               "threshold": float(per_threshold[j]) if per_threshold.ndim == 1 else None}
        for j, name in enumerate(class_names)}
    return report


def _intervals(truth: np.ndarray, scores: np.ndarray, decided: np.ndarray, resamples: int,
               seed: int) -> dict[str, list[float] | None]:
    """95% percentile intervals of mAP, micro F1 and macro F1 over photos resampled with replacement."""
    if not resamples or len(truth) < 2:
        return {"map_interval": None, "micro_f1_interval": None, "macro_f1_interval": None}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"map": [], "micro_f1": [], "macro_f1": []}
    for _ in range(resamples):
        pick = rng.integers(0, len(truth), len(truth))
        mean_ap = mean_average_precision(truth[pick], scores[pick])
        micro, macro, _ = f1_scores(truth[pick], decided[pick])
        if mean_ap is not None:
            draws["map"].append(mean_ap)
        draws["micro_f1"].append(micro)
        draws["macro_f1"].append(macro)
    return {f"{key}_interval": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
            if values else None for key, values in draws.items()}
