"""Stage `export`: write the trained model as deployable artifacts, each with its side files and parity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlpipe.models.export import FORMATS
from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

FORMAT_NAMES = tuple(FORMATS)


@dataclass(frozen=True)
class ExportConfig:
    """Which artifacts to write (`dlpipe export RUN` adds more later)."""

    formats_help = ("artifacts to write: " + ", ".join(FORMAT_NAMES) + " (SavedModel takes encoded image bytes or "
                    "raw strings; TFLite takes pixels or token ids, with the vocabulary in the file; tflite-int8 is "
                    "for image, multi-label, segmentation and detection models)")
    formats: list[str] = option(["keras", "savedmodel"], formats_help)
    parity_sample: int = option(100, "validation inputs each artifact is checked on against the Keras model (0: none)")
    device_check: bool = option(False, "also run each .tflite in MediaPipe Tasks (its own environment, .venv-mediapipe) "
                                       "on the raw validation inputs and record its agreement with the Keras model "
                                       "under 'mediapipe' in artifacts.json, as `dlpipe check-device` does")

    def __post_init__(self) -> None:
        for name in self.formats:
            require(name in FORMAT_NAMES, "formats", f"unknown format {name!r}; choose from {list(FORMAT_NAMES)}")
        require(self.parity_sample >= 0, "parity_sample", "must be >= 0")
        require(not self.device_check or "keras" in self.formats, "device_check",
                "needs keras among export.formats: the Keras model is the reference")


class ExportStage(Stage):
    """Write each format through the task's registered exporter; every write is atomic.

    Each artifact's record in artifacts.json holds its provenance and its
    agreement with the Keras model on validation inputs, measured by loading
    the written file back, so `--artifact auto` can pick the fastest faithful one.
    """

    config_cls = ExportConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.pipelines.exporting import export_formats

        model = self.exported_model(ctx)
        written = export_formats(model, list(self.config.formats), ctx.out_dir, ctx.task, ctx.class_names,
                                 ctx.preprocessing, ctx.train, ctx.val, self.config.parity_sample,
                                 source_run=ctx.out_dir, config_text=ctx.config.to_yaml())
        ctx.artifacts.update({fmt: str(path) for fmt, path in written.items()})
        checked = self.check_on_device(ctx, written) if self.config.device_check else ""
        wrote = ", ".join(p.name + ("/" if p.is_dir() else "") for p in written.values())
        return ("wrote " + wrote if written else "nothing to write") + checked

    def check_on_device(self, ctx: RunContext, written: dict[str, Any]) -> str:
        """Each written .tflite in MediaPipe Tasks on the raw validation inputs (pipelines/device_check.py)."""
        from dlpipe.models.tasks import InputSet
        from dlpipe.pipelines.device_check import agreement, check_device

        if not any(str(path).endswith(".tflite") for path in written.values()) or not len(ctx.val):
            return ""
        inputs, labels = InputSet(), {}
        for index, item in enumerate(ctx.val.inputs):
            inputs.add(f"val:{index}", item)
            if ctx.val.labels and ctx.task.name != "detect":  # a detector's labels are boxes: not compared
                labels[f"val:{index}"] = ctx.task.label_name(ctx.val.labels[index], ctx.class_names)
        report = check_device(ctx.out_dir, "the validation inputs", given=(inputs, labels or None))
        return "; MediaPipe agrees with the Keras model on " + ", ".join(
            f"{agreement(figures):.1%} ({name})" if agreement(figures) is not None
            else f"- ({name})" for name, figures in report["files"].items())

    def exported_model(self, ctx: RunContext) -> Any:
        """The Keras model the artifacts hold: the run's model (a task whose model wraps another, e.g. a GAN's
        generator, says which part)."""
        return ctx.need("model", "model")
