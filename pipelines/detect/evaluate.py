"""Stage `evaluate` (detect): COCO mAP, AP50, AP75 and per-class AP with intervals over photos; PR curves; gate.

The validation photos go through the task's own input code (decode, stretch, the photo's size) and the
deployable model (decoding included), and boxes are scaled back to each photo's pixels, exactly as
`dlpipe predict` and `dlpipe evaluate` do, so metrics.json is what an artifact scores on these photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

METRICS_FILE = "metrics.json"
PR_FILE = "pr_curves.png"
SAMPLES_FILE = "sample_detections.png"
KEPT_SCORE = 0.001  # boxes below this score are not kept in metrics.json's predictions (COCO-style scoring)


@dataclass(frozen=True)
class DetectEvaluateConfig:
    """The quality gate and what to write."""

    min_map: float = option(0.0, "fail the run before export when validation mAP (0.50:0.95) is below this")
    min_score: float = option(0.3, "operating threshold for the precision/recall line (what predict keeps)")
    plots: bool = option(True, "write pr_curves.png, sample_detections.png and training_curves.png")
    samples: int = option(6, "validation photos drawn in sample_detections.png")
    batch_size: int = option(16, "photos per prediction step")
    bootstrap: int = option(300, "bootstrap resamples (over photos) for the 95% intervals")

    def __post_init__(self) -> None:
        require(0.0 <= self.min_map <= 1.0, "min_map", f"must be in [0, 1]. Received: {self.min_map}")
        require(0.0 <= self.min_score <= 1.0, "min_score", f"must be in [0, 1]. Received: {self.min_score}")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.samples >= 0 and self.bootstrap >= 0, "samples", "samples and bootstrap must be >= 0")


class DetectEvaluateStage(Stage):
    """Score the validation photos (metrics.json with every kept box, for cross-validation's pooling), plots.

    Stops the run before export when mAP is below `min_map`.
    """

    config_cls = DetectEvaluateConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.tasks.detect.metrics import detection_report

        from dlpipe import atomic
        from dlpipe.errors import DlpipeError

        cfg = self.config
        if not len(ctx.val):
            raise DlpipeError("evaluate: no validation data; set load.val_split above 0 or give load.val_path")
        rows = predict_photos(ctx, deployable_model(ctx), list(ctx.val.inputs), cfg.batch_size)
        report = detection_report(ctx.val.objects, rows, ctx.class_names, cfg.min_score, cfg.bootstrap, ctx.seed,
                                  curves=True)
        report.update(split="validation", class_names=list(ctx.class_names), min_map=cfg.min_map, passed=report["map"] >= cfg.min_map,
                      predictions={"inputs": list(ctx.val.inputs),
                                   "boxes": [r.round(3).tolist() for r in rows],
                                   "truth": [[[obj.label, *obj.box, int(obj.crowd)] for obj in photo]
                                             for photo in ctx.val.objects]})
        ctx.metrics = report
        atomic.write_json(ctx.out_dir / METRICS_FILE, report)
        if cfg.plots:
            self.write_plots(ctx, report, rows)
        summary = summary_text(report)
        if not report["passed"]:
            raise DlpipeError(f"{summary}: below evaluate.min_map {cfg.min_map}; nothing exported "
                              f"(see {ctx.out_dir / METRICS_FILE})")
        return summary

    def write_plots(self, ctx: RunContext, report: dict[str, Any], rows: list[Any]) -> None:
        from dlpipe.pipelines.detect.plots import plot_pr_curves, plot_sample_detections
        from dlpipe.pipelines.plots import plot_training_curves

        plot_pr_curves(report, ctx.out_dir / PR_FILE)
        if self.config.samples:
            count = min(self.config.samples, len(ctx.val))
            plot_sample_detections(ctx.val.inputs[:count], ctx.val.objects[:count], rows[:count], ctx.class_names,
                                   self.config.min_score, ctx.out_dir / SAMPLES_FILE)
        if ctx.history.get("phases"):
            plot_training_curves(ctx.history["phases"], ctx.out_dir / "training_curves.png")


def deployable_model(ctx: RunContext) -> Any:
    """The trained model with its decoding, at the size it ships at (`model.inference_scale`): what every artifact
    holds and what metrics.json scores."""
    from dlpipe.models.detector import at_input_size, detection_model

    model = ctx.need("model", "model")
    network = at_input_size(model, ctx.preprocessing.image_size)
    return detection_model(network, len(ctx.class_names), getattr(model, "max_detections", 100))


def predict_photos(ctx: RunContext, model: Any, photos: list[str], batch_size: int) -> list[Any]:
    """Each photo's boxes in its own pixels after class-wise NMS, scores >= KEPT_SCORE (pixels, rows of 6)."""
    import numpy as np
    from dlpipe.models.tasks import InputSet
    from dlpipe.models.tasks.detect import select_detections

    from dlpipe.errors import DataError

    task = ctx.task
    inputs = InputSet()
    for photo in photos:
        inputs.add(photo, photo)
    rows: list[Any] = []
    for prepared in task.batches(inputs, ctx.preprocessing, batch_size):
        if prepared.errors:
            key, reason = next(iter(prepared.errors.items()))
            raise DataError(key, reason)
        found = task.finish(prepared.batch, model.predict_on_batch(np.asarray(prepared.batch["pixels"], np.float32)))
        rows += [select_detections(row, KEPT_SCORE, task.nms_iou, task.max_boxes) for row in found]
    return rows


def summary_text(report: dict[str, Any]) -> str:
    low, high = report["map_interval"] or (report["map"], report["map"])
    return (f"validation mAP {report['map']:.3f} (95% interval {low:.3f}-{high:.3f}), AP50 {report['ap50']:.3f}, "
            f"AP75 {report['ap75']:.3f} on {report['count']} photos, {report['objects']} boxes")
