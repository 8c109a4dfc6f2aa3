"""Stage `evaluate` (image-classify): the classifier's evaluation, with optional test-time flips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.stages.evaluate import EvaluateConfig, EvaluateStage


@dataclass(frozen=True)
class ImageEvaluateConfig(EvaluateConfig):
    """The quality gate, what to write, and test-time augmentation."""

    tta: Literal["none", "flip"] = option(
        "none", "test-time augmentation: flip averages each image's probabilities with its mirror's; the model "
                "itself does it, so every export does too (twice the inference cost)")
    unknown: bool | Literal["auto"] = option(
        "auto", "answer 'unknown' for photos far from the training photos (cosine of the backbone features to the "
                "nearest class mean, checked inside the exported model); auto: with a pretrained backbone and at "
                "least 50 held-out photos to choose the threshold from")
    unknown_keep: float = option(0.97, "the unknown threshold keeps this share of held-out in-distribution photos")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.5 <= self.unknown_keep < 1.0, "unknown_keep", f"must be in [0.5, 1). Received: {self.unknown_keep}")


class ImageEvaluateStage(EvaluateStage):
    """Score the trained model on the validation split: metrics.json, confusion matrix and training curves.

    With `tta: flip` the evaluated and exported model averages each image with its mirror.
    Stops the run before export when accuracy is below `min_accuracy`.
    """

    config_cls = ImageEvaluateConfig

    def model_to_ship(self, ctx: RunContext, model: Any) -> Any:
        from dlpipe.models.tta import with_tta

        return with_tta(model, self.config.tta)

    def report_fields(self) -> dict[str, Any]:
        return {"tta": self.config.tta}

    def after_calibration(self, ctx: RunContext) -> dict[str, Any]:
        from dlpipe.pipelines.unknown import attach_unknown

        return {"unknown": attach_unknown(ctx, self.config.unknown, self.config.unknown_keep, self.config.batch_size)}
