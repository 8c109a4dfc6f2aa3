"""How `train.cv_folds` pools a multi-label model's folds: out-of-fold scores, cross-fitted thresholds, intervals.

Every photo is scored once, by the fold model that did not train on it. mAP is computed on those pooled
scores; F1 decides each photo at thresholds chosen on the OTHER folds' out-of-fold scores (cross-fitting),
so no photo's decision uses a threshold tuned on itself. Intervals resample photos (1,000 draws, seeded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlpipe.pipelines.training.crossval import (
    CrossValidationReport, interval_text, plot_pooled_map, pooled_map_score,
)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    from dlpipe.models.multilabel_metrics import crossfit_thresholds, multilabel_report

    class_names = list(results[0]["per_label"])
    scores = np.concatenate([np.asarray(m["predictions"]["scores"], np.float64) for m in results])
    truth = np.concatenate([np.asarray(m["predictions"]["truth"], np.int64) for m in results])
    fold_of = np.concatenate([np.full(len(m["predictions"]["scores"]), k) for k, m in enumerate(results)])
    pooled = multilabel_report(truth, scores, crossfit_thresholds(truth, scores, fold_of), class_names, seed=0)
    maps = np.asarray([m["map"] if m["map"] is not None else np.nan for m in results], np.float64)
    return {"folds": len(results), "pooled": pooled,
            "map_mean": float(np.nanmean(maps)), "map_sd": float(np.nanstd(maps, ddof=1)) if len(maps) > 1 else 0.0,
            "per_fold": [{"fold": k, "map": m["map"], "micro_f1_own_thresholds": m["micro_f1"], "count": m["count"],
                          "seconds": m.get("seconds")} for k, m in enumerate(results)],
            "note": "pooled: every photo scored once by the fold model that did not train on it; F1 at thresholds "
                    "chosen on the other folds' photos. Its 95% intervals are the estimate to trust."}


def fold_line(metrics: dict[str, Any]) -> str:
    head = f"mAP {metrics['map']:.3f}" if metrics["map"] is not None else "mAP -"
    return f"{head}, micro F1 {metrics['micro_f1']:.3f} (at thresholds chosen on this fold) on {metrics['count']}"


def summary_line(summary: dict[str, Any]) -> str:
    pooled = summary["pooled"]
    interval = lambda key: interval_text(pooled, key)  # noqa: E731

    return (f"cross-validation ({summary['folds']} folds): mAP {summary['map_mean']:.3f} ± {summary['map_sd']:.3f} "
            f"(mean ± sd); pooled mAP {pooled['map']:.3f}{interval('map')}, micro F1 {pooled['micro_f1']:.3f}"
            f"{interval('micro_f1')}, macro F1 {pooled['macro_f1']:.3f}{interval('macro_f1')} on {pooled['count']} photos")


MULTILABEL_REPORT = CrossValidationReport(summarize, fold_line, summary_line, plot_pooled_map, pooled_map_score)
