"""Stage `preprocess` (image-classify): decode, resize, colour-convert and filter.

Sizes and resize mode default to what the chosen backbone was trained with.
The decoded images are cached in memory, so later epochs skip the decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

Normalize = Literal["backbone", "unit", "standardize", "tf", "caffe", "torch", "efficientnet_lite", "none"]


@dataclass(frozen=True)
class ImagePreprocessConfig:
    image_size: int | None = option(None, "square input size in pixels; default: the backbone's own")
    resize: Literal["stretch", "pad", "crop"] | None = option(
        None, "stretch (ignore aspect), pad (keep aspect, letterbox) or crop (shorter side, centre crop); default: the backbone's"
    )
    crop_fraction: float = option(0.875, "with resize=crop: fraction of the resized shorter side kept (224/256)")
    normalize: Normalize = option(
        "backbone", "backbone (its own preprocessing), unit ([0,1]), standardize (per image and channel), or a named mode"
    )
    color_space: Literal["rgb", "grayscale", "yuv"] = option("rgb", "convert images before the model sees them")
    filter: Literal["none", "gaussian", "median"] = option("none", "OpenCV smoothing filter after resizing")
    filter_size: int = option(3, "filter kernel size (odd)")
    cache: bool = option(True, "keep decoded images in memory after the first epoch")

    def __post_init__(self) -> None:
        require(self.image_size is None or self.image_size >= 8, "image_size", f"must be at least 8. Received: {self.image_size}")
        require(0.0 < self.crop_fraction <= 1.0, "crop_fraction", f"must be in (0, 1]. Received: {self.crop_fraction}")
        require(self.filter_size >= 1 and self.filter_size % 2 == 1, "filter_size", f"must be a positive odd number. Received: {self.filter_size}")


class ImagePreprocessStage(Stage):
    name = "preprocess"
    config_cls = ImagePreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.datasets import decoded_images
        from dlpipe.data.preprocess import ImagePreprocessing
        from dlpipe.models.backbones import get_backbone

        cfg = self.config
        spec = get_backbone(ctx.config["model"].backbone)
        ctx.backbone_spec = spec
        ctx.preprocessing = ImagePreprocessing(
            image_size=cfg.image_size or spec.input_size,
            resize=cfg.resize or spec.resize,
            crop_fraction=cfg.crop_fraction,
            color_space=cfg.color_space,
            filter=cfg.filter,
            filter_size=cfg.filter_size,
        )
        ctx.train_data = decoded_images(*ctx.need("train_files", "load"), ctx.preprocessing, cfg.cache)
        ctx.val_data = decoded_images(*ctx.val_files, ctx.preprocessing, cfg.cache)
        prep = ctx.preprocessing
        return f"{prep.image_size}x{prep.image_size} {prep.resize}, {prep.color_space}, filter {prep.filter}"
