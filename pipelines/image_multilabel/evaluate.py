"""Stage `evaluate` (image-multilabel): per-label thresholds, mAP and F1 with intervals, and the quality gate.

Thresholds are chosen per label (best F1) on the validation predictions of the model selected before any
refit, which never trained on those photos, then folded into the shipped model (`fold_thresholds`), so every
export decides with one threshold, 0.5. The photos' scores are kept in metrics.json (`predictions`), which is
what cross-validation pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class MultiLabelEvaluateConfig:
    """The quality gate, the intervals and what to write."""

    min_map: float = option(0.0, "fail the run before export when validation mAP is below this")
    bootstrap: int = option(1000, "bootstrap resamples (over photos) for the 95% intervals")
    batch_size: int = option(32, "photos per prediction step")
    plots: bool = option(True, "write training_curves.png")
    tta: Literal["none", "flip"] = option(
        "none", "test-time augmentation: flip averages each photo's label scores with its mirror's; thresholds are "
                "chosen on those averages and the model itself does it, so every export does too (twice the "
                "inference cost)")

    def __post_init__(self) -> None:
        require(0.0 <= self.min_map <= 1.0, "min_map", f"must be in [0, 1]. Received: {self.min_map}")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")


class MultiLabelEvaluateStage(Stage):
    """Choose each label's threshold on the validation photos, score mAP and micro/macro F1 (metrics.json), and
    fold the thresholds into the model that is exported (with `tta: flip`, the model averaging each photo with
    its mirror). Stops before export when mAP is below `min_map`."""

    config_cls = MultiLabelEvaluateConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.errors import DlpipeError
        from dlpipe.models.multilabel_metrics import choose_thresholds, multilabel_report
        from dlpipe.models.tasks.multilabel.layers import fold_thresholds
        from dlpipe.models.tta import with_tta
        from dlpipe.pipelines.stages.evaluate import outputs_before_refit

        cfg = self.config
        model = ctx.need("model", "model")
        shipped = with_tta(model, cfg.tta)
        if not len(ctx.val):
            raise DlpipeError("evaluate: no validation data; set load.val_split above 0 or give load.val_path")
        batches = batched(ctx.val_data, cfg.batch_size).map(lambda x, y: x)
        scores = np.asarray(outputs_before_refit(ctx, model, shipped, batches), np.float64)
        truth = np.asarray(ctx.val.labels, np.int64)
        thresholds = choose_thresholds(truth, scores)
        report = multilabel_report(truth, scores, thresholds, ctx.class_names, cfg.bootstrap, ctx.seed)
        report.update(split="validation", tta=cfg.tta, thresholds=dict(zip(ctx.class_names, map(float, thresholds))),
                      min_map=cfg.min_map, passed=(report["map"] or 0.0) >= cfg.min_map,
                      note="F1 is measured at thresholds chosen on these same photos: optimistic; cross-validation "
                           "(train.cv_folds) chooses each fold's thresholds on the other folds",
                      predictions={"inputs": list(ctx.val.inputs), "scores": scores.round(6).tolist(),
                                   "truth": truth.tolist()})
        if ctx.selected_weights is not None:
            report["refit"] = {**ctx.history.get("refit", {}), "note": "scores of the model selected before the "
                               "refit on train + validation; the exported model trained on these photos too"}
        ctx.metrics = report
        atomic.write_json(ctx.out_dir / METRICS_FILE, report)
        if cfg.plots and ctx.history.get("phases"):
            from dlpipe.pipelines.plots import plot_training_curves

            plot_training_curves(ctx.history["phases"], ctx.out_dir / "training_curves.png")
        ctx.model = fold_thresholds(shipped, thresholds)
        summary = summary_text(report)
        if not report["passed"]:
            raise DlpipeError(f"{summary}: below evaluate.min_map {cfg.min_map}; nothing exported "
                              f"(see {ctx.out_dir / METRICS_FILE})")
        return summary


def summary_text(report: dict[str, Any]) -> str:
    low, high = report.get("map_interval") or (float("nan"), float("nan"))
    if report["map"] is None:
        return f"validation micro F1 {report['micro_f1']:.3f} on {report['count']} photos (no label present: no mAP)"
    return (f"validation mAP {report['map']:.3f} (95% interval {low:.3f}-{high:.3f}), micro F1 {report['micro_f1']:.3f},"
            f" macro F1 {report['macro_f1']:.3f} on {report['count']} photos")
