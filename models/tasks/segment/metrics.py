"""Segmentation metrics (plain numpy): per-class IoU, mean IoU and pixel accuracy, with bootstrap intervals.

Pixels of one photo are not independent draws, so the intervals resample whole images
(percentile bootstrap over images): with 40 validation photos, a mean IoU of 0.80 may well be
anything from about 0.75 to 0.85.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_per_image(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(images, classes, classes) pixel counts; rows are true classes, columns predicted ones."""
    out = np.zeros((len(truth), num_classes, num_classes), np.int64)
    for index, (t, p) in enumerate(zip(truth, predicted)):
        t = np.asarray(t, np.int64).ravel()
        p = np.asarray(p, np.int64).ravel()
        out[index] = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return out


def iou_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """IoU per class = TP / (TP + FP + FN); NaN for a class that is neither present nor predicted."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def segmentation_report(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray], class_names: list[str],
                        resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per-class IoU, mean IoU (over classes present) and pixel accuracy, each with a 95% bootstrap interval."""
    k = len(class_names)
    per_image = confusion_per_image(truth, predicted, k)
    total = per_image.sum(axis=0)
    iou = iou_from_confusion(total)
    rng = np.random.default_rng(seed)
    samples_iou, samples_acc = [], []
    n = len(per_image)
    for _ in range(resamples if n > 1 else 0):
        matrix = per_image[rng.integers(0, n, n)].sum(axis=0)
        samples_iou.append(iou_from_confusion(matrix))
        samples_acc.append(np.trace(matrix) / max(matrix.sum(), 1))
    samples = np.asarray(samples_iou).reshape(-1, k)
    means = np.array([np.nanmean(row) if not np.all(np.isnan(row)) else np.nan for row in samples])

    def interval(values: np.ndarray) -> list[float]:
        values = values[~np.isnan(values)]
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else [0.0, 1.0]

    per_class = {}
    for index, name in enumerate(class_names):
        per_class[name] = {"iou": None if np.isnan(iou[index]) else float(iou[index]),
                           "iou_interval": interval(samples[:, index]) if len(samples) else [0.0, 1.0],
                           "pixels": int(total[index].sum()), "images": int((per_image[:, index].sum(axis=1) > 0).sum())}
    accuracy = float(np.trace(total) / max(total.sum(), 1))
    return {
        "mean_iou": float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else 0.0,
        "mean_iou_interval": interval(means),
        "pixel_accuracy": accuracy,
        "pixel_accuracy_interval": interval(np.asarray(samples_acc)) if samples_acc else [0.0, 1.0],
        # `accuracy` is what export parity compares between an artifact and the Keras model
        "accuracy": accuracy,
        "count": n,
        "per_class": per_class,
        "confusion_matrix": total.tolist(),
        "class_names": list(class_names),
        "interval_method": f"95% percentile bootstrap over images ({resamples} resamples)",
    }


def agreement(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> dict[str, float]:
    """How closely one set of masks follows another: pixel agreement and mean IoU over the classes either shows."""
    if not len(reference):  # nothing compared: unchecked (None), never faithful
        return {"top1_agreement": None, "mask_iou": None}
    k = int(max(np.max(r) for r in reference) if len(reference) else 0)
    k = max(k, int(max(np.max(o) for o in outputs))) + 1
    matrix = confusion_per_image(reference, outputs, max(k, 2)).sum(axis=0)
    iou = iou_from_confusion(matrix)
    return {"top1_agreement": float(np.trace(matrix) / max(matrix.sum(), 1)),
            "mask_iou": float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else None}
