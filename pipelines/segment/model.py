"""Stage `model` (segment): a U-Net decoder on a (pretrained) encoder."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import FineTuning, ModelInput, RunContext, Stage


@dataclass(frozen=True)
class SegmentModelConfig:
    """The network: encoder, its weights, the input size, the decoder."""

    encoder: str = option(
        "efficientnet_lite0", "a row of models/segmentation.py's ENCODERS: efficientnet_lite0 (ImageNet weights, "
                              "frozen then fine-tuned) or small (a tiny from-scratch conv encoder for small data and tests)")
    weights: str | None = option("imagenet", "imagenet (pretrained encoder), none (from scratch) or a weights file")
    image_size: int = option(224, "square input size in pixels, a multiple of 32 (photos are stretched to it)")
    decoder_filters: list[int] = option([256, 128, 64, 32, 16], "channels of the five decoder stages (stride 16 to 1)")
    dropout: float = option(0.1, "dropout on the encoder's deepest features")

    def __post_init__(self) -> None:
        require(self.image_size >= 32 and self.image_size % 32 == 0, "image_size",
                f"must be a multiple of 32. Received: {self.image_size}")
        require(len(self.decoder_filters) == 5 and all(f > 0 for f in self.decoder_filters), "decoder_filters",
                "must be five positive channel counts")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")


class SegmentModelStage(Stage):
    """Build the U-Net: normalisation, encoder (frozen when pretrained), decoder with skip connections, softmax.

    Tells later stages the input size (`ctx.model_input`) and which part may be fine-tuned (`ctx.fine_tuning`).
    """

    config_cls = SegmentModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.backbones import resolve_weights
        from dlpipe.models.segmentation import ENCODER_LAYER_NAME, ENCODERS, build_unet

        cfg = self.config
        weights = resolve_weights(ENCODERS.get(cfg.encoder, key="model.encoder"), cfg.weights)
        ctx.model, pattern = build_unet(cfg.encoder, len(ctx.need("class_names", "load")), cfg.image_size, weights,
                                        tuple(cfg.decoder_filters), cfg.dropout)
        ctx.model_input = ModelInput(cfg.image_size, "stretch")
        ctx.fine_tuning = FineTuning(ENCODER_LAYER_NAME, pattern) if weights else None
        return (f"U-Net on {cfg.encoder} ({weights or 'random init'}), {cfg.image_size}x{cfg.image_size} input, "
                f"{ctx.model.count_params():,} parameters, {len(ctx.class_names)} classes")
