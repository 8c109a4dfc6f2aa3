"""Stage `evaluate` of the classification tasks (images, text): validation metrics, plots and the quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class EvaluateConfig:
    """The quality gate and what to write."""

    min_accuracy: float = option(0.0, "fail the run before export when validation accuracy is below this")
    plots: bool = option(True, "write training_curves.png, confusion_matrix.png and (calibrated) reliability.png")
    batch_size: int = option(32, "examples per prediction step")
    calibrate: bool | Literal["auto"] = option(
        "auto", "temperature scaling fitted on held-out predictions (out-of-fold with train.cv_folds, else validation "
                "before any refit) and built into the exported model; auto: when there are at least 30 of them")

    def __post_init__(self) -> None:
        require(0.0 <= self.min_accuracy <= 1.0, "min_accuracy", f"must be in [0, 1]. Received: {self.min_accuracy}")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")


class EvaluateStage(Stage):
    """Score the trained model on the validation split: metrics.json, confusion matrix and training curves.

    Stops the run before export when accuracy is below `min_accuracy`.
    """

    config_cls = EvaluateConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.errors import DlpipeError
        from dlpipe.models.calibration import tempered
        from dlpipe.models.metrics import classification_report
        from dlpipe.pipelines import calibration
        from dlpipe.pipelines.plots import plot_confusion_matrix, plot_reliability, plot_training_curves

        cfg = self.config
        model = ctx.need("model", "model")
        paths, labels = ctx.val.inputs, ctx.val.labels
        if not paths:
            raise DlpipeError("evaluate: no validation data; set load.val_split above 0 or give load.val_path")
        ctx.model = self.model_to_ship(ctx, model)
        logits = calibration.view_logits(outputs_before_refit(ctx, model, calibration.view_outputs_model(ctx.model),
                                                              batched(ctx.val_data, cfg.batch_size)))
        calibration.save_outputs(ctx.out_dir, logits, labels, paths)
        probabilities = tempered(logits, 1.0)
        predicted = np.argmax(probabilities, axis=1)
        report = classification_report(labels, predicted.tolist(), ctx.class_names)
        report["split"] = "validation"
        report.update(self.report_fields())
        if ctx.selected_weights is not None:
            report["refit"] = {**ctx.history.get("refit", {}), "note": (
                "the exported model was retrained on train + validation; this accuracy is the model that validation "
                "selected before the refit, on photos it never trained on (the refit model trained on them)")}
        if "probe" in ctx.history:
            report["probe_baseline"] = ctx.history["probe"]
        report["calibration"] = calibration.calibrate(ctx, cfg.calibrate, logits, labels)
        fitted = report["calibration"] if "temperature" in (report["calibration"] or {}) else None
        report.update(self.after_calibration(ctx))
        if fitted is not None:  # the scores the exported model gives (the classes are the same)
            probabilities = tempered(logits, fitted["temperature"])
        report["min_accuracy"] = cfg.min_accuracy
        report["passed"] = report["accuracy"] >= cfg.min_accuracy
        report["errors"] = [
            {"input": path, "true": ctx.class_names[t], "predicted": ctx.class_names[p], "confidence": float(probabilities[i, p])}
            for i, (path, t, p) in enumerate(zip(paths, labels, predicted))
            if t != p
        ]
        ctx.metrics = report
        atomic.write_json(ctx.out_dir / METRICS_FILE, report)
        if cfg.plots:
            plot_confusion_matrix(report["confusion_matrix"], report["class_names"], ctx.out_dir / "confusion_matrix.png",
                                  f"validation accuracy {report['accuracy']:.3f}")
            if ctx.history.get("phases"):
                plot_training_curves(ctx.history["phases"], ctx.out_dir / "training_curves.png")
            if fitted is not None:
                plot_reliability(fitted, ctx.out_dir / calibration.RELIABILITY_PLOT)
        low, high = report["accuracy_interval"]
        summary = (f"validation accuracy {report['accuracy']:.3f} (95% interval {low:.3f}-{high:.3f}) on "
                   f"{report['count']} examples, macro F1 {report['macro_f1']:.3f}")
        probe = report.get("probe_baseline", {})
        if probe.get("accuracy") is not None and ctx.fine_tuning is not None and not ctx.fine_tuning.probe:
            summary += f"; linear probe {probe['accuracy']:.3f}"
        if ctx.selected_weights is not None:
            summary += " (before the refit on all images)"
        if fitted is not None:
            summary += (f"; temperature {fitted['temperature']:.2f}: ECE {fitted['ece_before']:.3f} -> "
                        f"{fitted['ece_after']:.3f} on {fitted['count']} held-out predictions")
        if not report["passed"]:
            raise DlpipeError(
                f"{summary}: below evaluate.min_accuracy {cfg.min_accuracy}; nothing exported (see {ctx.out_dir / METRICS_FILE})"
            )
        return summary

    def model_to_ship(self, ctx: RunContext, model: Any) -> Any:
        """The model that is evaluated and exported (a task may wrap the trained one, e.g. test-time flips)."""
        return model

    def report_fields(self) -> dict[str, Any]:
        """Settings of this evaluation that metrics.json records (none by default)."""
        return {}

    def after_calibration(self, ctx: RunContext) -> dict[str, Any]:
        """Change the calibrated model to ship (e.g. add the unknown answer): the records metrics.json keeps."""
        return {}


def outputs_before_refit(ctx: RunContext, base: Any, shipped: Any, batches: Any) -> Any:
    """`shipped`'s outputs on the validation batches; after a refit, with the weights selected before it.

    `shipped` wraps `base` (e.g. test-time flips) and shares its layers, so loading weights into `base` changes
    it too; the refit weights are put back afterwards.
    """
    if ctx.selected_weights is None:
        return shipped.predict(batches, verbose=0)
    final = base.get_weights()
    base.load_weights(ctx.selected_weights)
    try:
        return shipped.predict(batches, verbose=0)
    finally:
        base.set_weights(final)
