"""Stage `model` (detect): CenterNet heads on a light feature pyramid over a (pretrained) encoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import (
    FineTuning,
    ModelInput,
    RunContext,
    Stage,
    TrainingDefaults,
)

# the first phase's rate, for both starts: at 1e-3 the COCO start diverged (pipelines/detect/recipes.py)
LEARNING_RATE = 2e-3


def image_size_problem(image_size: int) -> str | None:
    """Why a square input size cannot feed the detector (its encoder's stride is 32), or None when it can."""
    if image_size >= 64 and image_size % 32 == 0:
        return None
    return f"must be a multiple of 32, at least 64. Received: {image_size}"


@dataclass(frozen=True)
class DetectModelConfig:
    """The network: encoder and its weights, input size, neck and head widths, boxes per photo."""

    encoder: str = option(
        "centernet_coco", "efficientnet_lite0 (ImageNet weights, with a new feature pyramid and heads), "
                              "centernet_coco (coco-detector's CenterNet-MobileNetV3: COCO detection weights for the "
                              "encoder, neck and box head, a new class head; needs scripts/fetch_coco_detector.sh) or "
                              "small (a tiny from-scratch conv encoder for tests)")
    weights: str | None = option("imagenet", "imagenet (pretrained encoder), none (from scratch) or a weights file; "
                                             "centernet_coco always starts from its COCO weights")
    image_size: int = option(320, "square input size in pixels, a multiple of 32 (photos are stretched to it)")
    neck_filters: list[int] = option([96, 64, 48], "channels of the feature pyramid at stride 16, 8 and 4")
    head_filters: int = option(64, "channels of each head's 3x3 convolution")
    inference_scale: float = option(
        1.3, "evaluation and every export run the trained network at image_size x this, rounded to a multiple of 32 "
             "(1: as trained). Trained at 320 on zoomed and tiled photos, it finds objects better at 416, for 1.7x the "
             "compute per photo (5-fold mAP 0.641 against 0.603 at 320; BENCHMARKS.md, Detection)")
    max_detections: int = option(100, "boxes the model answers per photo (best first; predict thresholds them)")

    def __post_init__(self) -> None:
        problem = image_size_problem(self.image_size)
        require(problem is None, "image_size", problem or "")
        problem = image_size_problem(self.inference_size)
        require(problem is None, "inference_scale", f"image_size x inference_scale {problem}")
        require(len(self.neck_filters) == 3 and all(f > 0 for f in self.neck_filters), "neck_filters",
                "must be three positive channel counts")
        require(self.head_filters > 0, "head_filters", "must be positive")
        require(1 <= self.max_detections <= 1000, "max_detections", "must be in 1..1000")

    @property
    def inference_size(self) -> int:
        return inference_size(self.image_size, self.inference_scale)


def inference_size(image_size: int, inference_scale: float) -> int:
    """The input size the trained detector is evaluated and exported at: image_size x scale, a multiple of 32."""
    return round(image_size * inference_scale / 32) * 32


COCO_START = "centernet_coco"


def coco_start(classes: int, image_size: int) -> tuple[Any, str]:
    """coco-detector's CenterNet-MobileNetV3 as a trainable model with a new class head, its encoder frozen; and
    the encoder's block regex."""
    from dlpipe.errors import DataError
    from dlpipe.models import centernet_port
    from dlpipe.models.centernet_start import build_coco_start
    from dlpipe.models.detector import ENCODER_LAYER_NAME

    reason = centernet_port.missing_reason()
    if reason:
        raise DataError("model.encoder=centernet_coco", reason)
    model, pattern = build_coco_start(classes, image_size)
    model.get_layer(ENCODER_LAYER_NAME).trainable = False
    return model, pattern


class DetectModelStage(Stage):
    """Build the training model (pixels -> heat map and box distances); the encoder starts frozen when pretrained."""

    config_cls = DetectModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.backbones import resolve_weights
        from dlpipe.models.detector import ENCODER_LAYER_NAME, build_detector
        from dlpipe.models.segmentation import ENCODERS

        cfg = self.config
        classes = len(ctx.need("class_names", "load"))
        if cfg.encoder == COCO_START:
            (ctx.model, pattern), weights = coco_start(classes, cfg.image_size), "COCO detection"
        else:
            weights = resolve_weights(ENCODERS.get(cfg.encoder, key="model.encoder"), cfg.weights)
            ctx.model, pattern = build_detector(cfg.encoder, classes, cfg.image_size, weights,
                                                tuple(cfg.neck_filters), cfg.head_filters)
        ctx.model.max_detections = cfg.max_detections  # the export stage's decoding keeps this many
        ctx.model_input = ModelInput(cfg.image_size, "stretch", cfg.inference_size)
        ctx.fine_tuning = FineTuning(ENCODER_LAYER_NAME, pattern) if weights else None
        ctx.training_defaults = TrainingDefaults(optimizer="adam", learning_rate=LEARNING_RATE)
        size = cfg.image_size
        runs_at = f" (evaluated and exported at {cfg.inference_size})" if cfg.inference_size != size else ""
        return (f"CenterNet on {cfg.encoder} ({weights or 'random init'}), {size}x{size} input{runs_at}, "
                f"{ctx.model.count_params():,} parameters, {classes} classes")
