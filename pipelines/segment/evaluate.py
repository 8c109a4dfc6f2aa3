"""Stage `evaluate` (segment): per-class IoU and mean IoU with bootstrap intervals, plots, the quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

METRICS_FILE = "metrics.json"
SAMPLES_FILE = "sample_predictions.png"
WORST_FILE = "worst_masks.png"
WORST_SHOWN = 5


@dataclass(frozen=True)
class SegmentEvaluateConfig:
    """The quality gate and what to write."""

    min_mean_iou: float = option(0.0, "fail the run before export when validation mean IoU is below this")
    plots: bool = option(True, "write sample_predictions.png and training_curves.png")
    samples: int = option(6, "validation photos shown in sample_predictions.png")
    batch_size: int = option(16, "images per prediction step")
    bootstrap: int = option(1000, "bootstrap resamples (over images) for the 95% intervals")

    def __post_init__(self) -> None:
        require(0.0 <= self.min_mean_iou <= 1.0, "min_mean_iou", f"must be in [0, 1]. Received: {self.min_mean_iou}")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.samples >= 0, "samples", "must be >= 0")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0")


class SegmentEvaluateStage(Stage):
    """Score the validation split: per-class IoU and mean IoU with bootstrap intervals (metrics.json), plots.

    Stops the run before export when mean IoU is below `min_mean_iou`.
    """

    config_cls = SegmentEvaluateConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.errors import DlpipeError
        from dlpipe.models.tasks.segment.metrics import segmentation_report
        from dlpipe.pipelines.plots import plot_training_curves
        from dlpipe.pipelines.segment.plots import plot_sample_predictions

        cfg = self.config
        model = ctx.need("model", "model")
        if not len(ctx.val):
            raise DlpipeError("evaluate: no validation data; set load.val_split above 0 or give load.val_path")
        data = batched(ctx.val_data, cfg.batch_size)
        probabilities = model.predict(data.map(lambda x, y: x), verbose=0)
        predicted = np.argmax(probabilities, axis=-1).astype(np.uint8)
        truth = np.concatenate([y.numpy() for _, y in data]).astype(np.uint8)
        report = segmentation_report(list(truth), list(predicted), ctx.class_names, resamples=cfg.bootstrap, seed=ctx.seed)
        report.update(split="validation", resolution=f"{predicted.shape[1]}x{predicted.shape[2]} (the model's input)",
                      min_mean_iou=cfg.min_mean_iou, passed=report["mean_iou"] >= cfg.min_mean_iou)
        per_image = [float(np.mean(t == p)) for t, p in zip(truth, predicted)]
        worst = np.argsort(per_image)[:WORST_SHOWN]
        report["worst_images"] = [{"input": ctx.val.inputs[i], "pixel_accuracy": per_image[i]} for i in worst]
        ctx.metrics = report
        atomic.write_json(ctx.out_dir / METRICS_FILE, report)
        if cfg.plots:
            if cfg.samples:
                images = np.concatenate([x.numpy() for x, _ in data.take((cfg.samples + cfg.batch_size - 1) // cfg.batch_size)])
                count = min(cfg.samples, len(images))
                plot_sample_predictions(images[:count], truth[:count], predicted[:count], ctx.class_names,
                                        ctx.out_dir / SAMPLES_FILE, f"validation mean IoU {report['mean_iou']:.3f}")
            if ctx.history.get("phases"):
                plot_training_curves(ctx.history["phases"], ctx.out_dir / "training_curves.png")
            plot_sample_predictions(images_at(data, worst), truth[worst], predicted[worst], ctx.class_names,
                                    ctx.out_dir / WORST_FILE, "the worst validation masks (fewest pixels right)")
        low, high = report["mean_iou_interval"]
        ious = ", ".join(f"{name} {c['iou']:.3f}" if c["iou"] is not None else f"{name} -"
                         for name, c in report["per_class"].items())
        summary = (f"validation mean IoU {report['mean_iou']:.3f} (95% interval {low:.3f}-{high:.3f}) on "
                   f"{report['count']} images; per class: {ious}")
        if not report["passed"]:
            raise DlpipeError(f"{summary}: below evaluate.min_mean_iou {cfg.min_mean_iou}; nothing exported "
                              f"(see {ctx.out_dir / METRICS_FILE})")
        return summary


def images_at(batches: Any, indices: Sequence[int]) -> Any:
    """The images of a batched (image, mask) dataset at `indices`, in that order, holding only those in memory."""
    import numpy as np

    wanted = {int(index): position for position, index in enumerate(indices)}
    picked, start = [None] * len(wanted), 0
    for images, _ in batches:
        for offset in range(len(images)):
            if start + offset in wanted:
                picked[wanted[start + offset]] = images[offset].numpy()
        start += len(images)
    return np.stack(picked)
