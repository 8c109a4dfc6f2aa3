"""How `train.cv_folds` pools a detector's folds: every photo's boxes from the fold model that did not train on it.

The pooled mAP / AP50 (with 95% intervals over photos) is computed by the same scorer on all folds'
validation photos together, so it is one estimate over the whole dataset; mean and sd over folds sit beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dlpipe.pipelines.training.crossval import (
    CrossValidationReport, interval_text, plot_pooled_map, pooled_map_score,
)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    from dlpipe.data.box_annotations import BoxLabel
    from dlpipe.models.tasks.detect.metrics import detection_report

    class_names = list(results[0]["class_names"])
    truth, rows = [], []
    for metrics in results:
        for photo in metrics["predictions"]["truth"]:
            truth.append([BoxLabel(label, tuple(box), bool(crowd)) for label, *box, crowd in photo])
        rows += [np.asarray(boxes, np.float32).reshape(-1, 6) for boxes in metrics["predictions"]["boxes"]]
    pooled = detection_report(truth, rows, class_names, results[0]["min_score"], seed=0)
    maps = np.asarray([m["map"] for m in results])
    ap50s = np.asarray([m["ap50"] for m in results])
    spread = (lambda values: float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    return {"folds": len(results), "pooled": pooled, "map_mean": float(maps.mean()), "map_sd": spread(maps),
            "ap50_mean": float(ap50s.mean()), "ap50_sd": spread(ap50s),
            "train_cpu_minutes": [round((m.get("train_cpu_seconds") or 0) / 60, 2) for m in results],
            "per_fold": [{"fold": k, "map": m["map"], "ap50": m["ap50"], "count": m["count"],
                          "seconds": m.get("seconds"), "cpu_seconds": m.get("train_cpu_seconds")}
                         for k, m in enumerate(results)],
            "note": "pooled: every photo's boxes from the fold model that did not train on it, scored together "
                    "(COCO mAP, pycocotools); its 95% intervals resample photos"}


def fold_line(metrics: dict[str, Any]) -> str:
    return f"mAP {metrics['map']:.3f}, AP50 {metrics['ap50']:.3f} on {metrics['count']} photos"


def summary_line(summary: dict[str, Any]) -> str:
    pooled = summary["pooled"]
    interval = lambda key: interval_text(pooled, key)  # noqa: E731

    return (f"cross-validation ({summary['folds']} folds): mAP {summary['map_mean']:.3f} ± {summary['map_sd']:.3f}, "
            f"AP50 {summary['ap50_mean']:.3f} ± {summary['ap50_sd']:.3f} (mean ± sd); pooled mAP {pooled['map']:.3f}"
            f"{interval('map')}, AP50 {pooled['ap50']:.3f}{interval('ap50')} on {pooled['count']} photos")


DETECT_REPORT = CrossValidationReport(summarize, fold_line, summary_line, plot_pooled_map, pooled_map_score)
