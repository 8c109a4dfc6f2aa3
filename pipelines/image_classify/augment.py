"""Stage `augment` (image-classify): random transforms for the training batches only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage


@dataclass(frozen=True)
class ImageAugmentConfig:
    """Random transforms and their magnitudes."""

    enabled: bool = option(True, "switch all augmentation off with false")
    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = option("horizontal", "random flips")
    rotation: float = option(0.05, "max rotation as a fraction of a full turn")
    zoom: float = option(0.1, "max zoom in/out as a fraction of the image")
    translation: float = option(0.1, "max shift as a fraction of the image")
    brightness: float = option(0.1, "max brightness change as a fraction of the pixel range")
    contrast: float = option(0.1, "max contrast change factor")
    noise: float = option(0.0, "Gaussian noise standard deviation as a fraction of the pixel range")
    strength: float = option(1.0, "multiplies every magnitude above at once")

    def __post_init__(self) -> None:
        for name in ("rotation", "zoom", "translation", "brightness", "contrast", "noise", "strength"):
            value = getattr(self, name)
            require(value >= 0, name, f"must be >= 0. Received: {value}")
        require(self.zoom * self.strength < 1, "zoom", "times strength must stay below 1")


class ImageAugmentStage(Stage):
    """Random flips, rotations, zoom, shifts, brightness/contrast and noise on training batches only (Keras layers)."""

    config_cls = ImageAugmentConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.augment import build_augmenter

        cfg = self.config
        if not cfg.enabled:
            ctx.augmenter = None
            return "off"
        k = cfg.strength
        ctx.augmenter = build_augmenter(
            flip=cfg.flip,
            rotation=cfg.rotation * k,
            zoom=cfg.zoom * k,
            translation=cfg.translation * k,
            brightness=min(cfg.brightness * k, 1.0),
            contrast=cfg.contrast * k,
            noise=cfg.noise * k,
            seed=ctx.seed,
        )
        if ctx.augmenter is None:
            return "off (all magnitudes are 0)"
        return ", ".join(layer.name for layer in ctx.augmenter.layers)
