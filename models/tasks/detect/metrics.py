"""Detection metrics: COCO's mean average precision (pycocotools), with bootstrap intervals over photos.

pycocotools is the reference implementation behind every published COCO number, so dlpipe's mAP is
comparable with them: the matching of boxes (IoU thresholds 0.50:0.95, crowd regions, 100 detections
per photo) is its code. Objects of one photo are not independent draws, so the 95% intervals resample
whole photos: each resample re-accumulates pycocotools' per-photo matches with the photos weighted by
how often they were drawn (with every weight 1 this is exactly pycocotools' own accumulation).
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

MAX_DETECTIONS = 100  # per photo, as COCO's benchmark


@dataclass
class _ClassMatches:
    """One class's detections over all photos, best first: their scores and photos, and at each IoU threshold
    whether they matched an object (tp) or nothing (fp); and how many objects each photo holds that count."""

    scores: np.ndarray  # (D,), best first
    photo: np.ndarray  # (D,)
    tp: np.ndarray  # (T, D) bool
    fp: np.ndarray  # (T, D) bool
    objects_per_photo: np.ndarray  # (photos,)


def detection_report(truth: Sequence[Sequence[Any]], predicted: Sequence[np.ndarray], class_names: list[str],
                     min_score: float, resamples: int = 300, seed: int = 0, curves: bool = False) -> dict[str, Any]:
    """COCO metrics of `predicted` (per photo, rows x1 y1 x2 y2 score class in pixels) against `truth` (per photo,
    objects with .label, .box and .crowd), plus precision and recall at the operating threshold `min_score`;
    with `curves`, each class's precision at COCO's 101 recall points at IoU 0.5 (`pr_curves`)."""
    evaluator = _coco_eval(truth, predicted, class_names)
    if evaluator is None:  # no detections at all: every AP is 0
        stats, per_class, matches = np.zeros(12), {}, []
    else:
        stats = evaluator.stats
        matches = _class_matches(evaluator)
        per_class = _per_class(evaluator, class_names)
    counts = Counter(obj.label for photo in truth for obj in photo if not obj.crowd)
    objects = sum(counts.values())
    for name in counts:
        per_class.setdefault(name, {"ap": 0.0, "ap50": 0.0})
    for name in per_class:
        per_class[name]["objects"] = counts[name]
    samples = _bootstrap(matches, len(truth), resamples, seed)
    tp, fp = _at_threshold(matches, min_score)
    report = {
        "map": float(max(stats[0], 0.0)),
        "map_interval": _interval(samples[:, 0]),
        "ap50": float(max(stats[1], 0.0)),
        "ap50_interval": _interval(samples[:, 1]),
        "ap75": float(max(stats[2], 0.0)),
        "ap_by_size": {size: (float(value) if value >= 0 else None)
                       for size, value in zip(("small", "medium", "large"), stats[3:6])},
        "min_score": float(min_score),
        "precision_at_min_score": tp / (tp + fp) if tp + fp else None,
        "recall_at_min_score": tp / objects if objects else None,
        "per_class": dict(sorted(per_class.items(), key=lambda item: -item[1]["objects"])),
        "count": len(truth),
        "objects": objects,
        "metric": "COCO bbox mAP (IoU 0.50:0.95, 100 detections per photo; pycocotools), intervals: bootstrap over photos",
    }
    if curves:
        report["pr_curves"] = _pr_curves(evaluator, class_names) if evaluator is not None else {}
    return report


def _pr_curves(evaluator: Any, class_names: list[str]) -> dict[str, dict[str, list[float]]]:
    """Precision at recall 0, 0.01, ..., 1 at IoU 0.5, per class with objects (pycocotools' interpolated curve)."""
    precision = evaluator.eval["precision"]  # (T, R, K, A, M)
    recall = evaluator.params.recThrs
    out = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[0, :, k, 0, -1]
        if (values > -1).any():
            out[class_names[category]] = {"recall": [round(float(r), 2) for r in recall],
                                          "precision": [round(float(max(v, 0.0)), 4) for v in values]}
    return out


def _coco_eval(truth: Sequence[Sequence[Any]], predicted: Sequence[np.ndarray], class_names: list[str]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground = COCO()
    annotations = []
    for photo, objects in enumerate(truth):
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            annotations.append({"id": len(annotations) + 1, "image_id": photo, "category_id": class_names.index(obj.label),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": int(obj.crowd)})
    ground.dataset = {"images": [{"id": photo} for photo in range(len(truth))], "annotations": annotations,
                      "categories": [{"id": index, "name": name} for index, name in enumerate(class_names)]}
    detections = [{"image_id": photo, "category_id": int(row[5]), "score": float(row[4]),
                   "bbox": [float(row[0]), float(row[1]), float(row[2] - row[0]), float(row[3] - row[1])]}
                  for photo, rows in enumerate(predicted) for row in rows]
    if not detections:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools narrates every step
        ground.createIndex()
        evaluator = COCOeval(ground, ground.loadRes(detections), "bbox")
        evaluator.params.maxDets = [1, 10, MAX_DETECTIONS]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _per_class(evaluator: Any, class_names: list[str]) -> dict[str, dict[str, float]]:
    """AP (0.50:0.95) and AP50 of each class that has objects."""
    precision = evaluator.eval["precision"]  # (T, R, K, A, M)
    out = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        if (values > -1).any():
            out[class_names[category]] = {"ap": float(values[values > -1].mean()),
                                          "ap50": float(values[0][values[0] > -1].mean())}
    return out


def _class_matches(evaluator: Any) -> list[_ClassMatches]:
    """pycocotools' per-photo matches (all sizes, 100 detections), regrouped per class in its accumulate order."""
    params = evaluator.params
    photos, areas = len(params.imgIds), len(params.areaRng)
    out = []
    for k in range(len(params.catIds)):
        entries = [(i, evaluator.evalImgs[k * areas * photos + i]) for i in range(photos)]
        entries = [(i, e) for i, e in entries if e is not None]
        if not entries:
            continue
        scores = np.concatenate([e["dtScores"][:MAX_DETECTIONS] for _, e in entries])
        order = np.argsort(-scores, kind="mergesort")
        matched = np.concatenate([e["dtMatches"][:, :MAX_DETECTIONS] for _, e in entries], axis=1)[:, order]
        ignored = np.concatenate([e["dtIgnore"][:, :MAX_DETECTIONS] for _, e in entries], axis=1)[:, order].astype(bool)
        photo = np.concatenate([np.full(min(len(e["dtScores"]), MAX_DETECTIONS), i) for i, e in entries])[order]
        objects = np.zeros(photos)
        for i, e in entries:
            objects[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
        out.append(_ClassMatches(scores[order], photo.astype(np.int64), (matched > 0) & ~ignored,
                                 (matched == 0) & ~ignored, objects))
    return out


def _average_precision(matches: list[_ClassMatches], weights: np.ndarray, recall_points: np.ndarray) -> np.ndarray:
    """(mAP 0.50:0.95, AP50) with photo i counted weights[i] times: pycocotools' accumulate, weighted."""
    per_class = []
    for cls in matches:
        objects = float((cls.objects_per_photo * weights).sum())
        if objects == 0:
            continue
        if not len(cls.photo):  # objects of this class, but no detection of it
            per_class.append(np.zeros(len(cls.tp)))
            continue
        w = weights[cls.photo]
        tp, fp = np.cumsum(cls.tp * w, axis=1), np.cumsum(cls.fp * w, axis=1)
        recall = tp / objects
        precision = tp / (tp + fp + np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the envelope, from the right
        ap = np.zeros(len(tp))
        for t in range(len(tp)):
            index = np.searchsorted(recall[t], recall_points, side="left")
            found = index < recall.shape[1]
            ap[t] = np.where(found, precision[t][np.minimum(index, recall.shape[1] - 1)], 0.0).mean()
        per_class.append(ap)
    if not per_class:
        return np.zeros(2)
    table = np.asarray(per_class)
    return np.array([table.mean(), table[:, 0].mean()])


def _bootstrap(matches: list[_ClassMatches], photos: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, 2) of (mAP, AP50) over photos drawn with replacement."""
    if photos < 2 or not matches:
        return np.zeros((0, 2))
    rng = np.random.default_rng(seed)
    points = np.linspace(0.0, 1.0, 101)
    return np.asarray([_average_precision(matches, np.bincount(rng.integers(0, photos, photos), minlength=photos),
                                          points) for _ in range(resamples)])


def _at_threshold(matches: list[_ClassMatches], min_score: float) -> tuple[int, int]:
    """Matched and unmatched detections at IoU 0.5 among those scoring at least `min_score` (what predict keeps)."""
    tp = fp = 0
    for cls in matches:
        kept = cls.scores >= min_score
        tp += int(cls.tp[0][kept].sum())
        fp += int(cls.fp[0][kept].sum())
    return tp, fp


def _interval(values: np.ndarray) -> list[float] | None:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else None


__all__ = ["MAX_DETECTIONS", "detection_report"]
