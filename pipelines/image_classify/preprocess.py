"""Stage `preprocess` (image-classify): decode, resize, colour-convert and filter, as every consumer will."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage


@dataclass(frozen=True)
class ImagePreprocessConfig:
    """How a file becomes model input pixels (the size itself is the model's: model.image_size)."""

    resize: Literal["stretch", "pad", "crop"] | None = option(
        "stretch", "stretch (ignore aspect: what MediaPipe Tasks does, so a .tflite answers raw photos on the device as "
                   "dlpipe does; BENCHMARKS.md, 'Same answer on the device'), pad (keep aspect, letterbox), crop "
                   "(shorter side, centre crop) or null (the backbone's own recipe: crop for ImageNet backbones)"
    )
    crop_fraction: float = option(0.875, "with resize=crop: fraction of the resized shorter side kept (224/256)")
    sampling: Literal["antialias", "mediapipe"] = option(
        "mediapipe", "antialias (filter, then bilinear: the least aliased input) or mediapipe (bilinear sampling on "
                     "MediaPipe Tasks' grid, no filter; with resize=stretch an exported .tflite sees the same pixels "
                     "in MediaPipe's ImageClassifier as in dlpipe)")
    color_space: Literal["rgb", "grayscale", "yuv"] = option("rgb", "convert images before the model sees them")
    filter: Literal["none", "gaussian", "median"] = option("none", "OpenCV smoothing filter after resizing")
    filter_size: int = option(3, "filter kernel size (odd)")
    cache: bool = option(True, "keep decoded images in memory after the first epoch")
    max_pixels: int = option(50_000_000, "the exported model's consumers (predict, evaluate, serve) refuse larger "
                                         "images before decoding them")
    reduced_decode: bool = option(True, "decode a JPEG at least twice the size the resize needs at 1/2, 1/4 or 1/8 "
                                        "scale (libjpeg DCT scaling): faster, nearly the same pixels; off with sampling=mediapipe")

    def __post_init__(self) -> None:
        require(self.max_pixels > 0, "max_pixels", "must be positive")
        require(0.0 < self.crop_fraction <= 1.0, "crop_fraction", f"must be in (0, 1]. Received: {self.crop_fraction}")
        require(self.filter_size >= 1 and self.filter_size % 2 == 1, "filter_size", f"must be a positive odd number. Received: {self.filter_size}")


class ImagePreprocessStage(Stage):
    """Fix the preprocessing spec (saved with every artifact) and build the decoded, cached datasets.

    The same `dlpipe.data.preprocess` code runs in training, export, predict and serving.
    """

    config_cls = ImagePreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.datasets import decoded_images
        from dlpipe.data.preprocess import ImagePreprocessing

        cfg = self.config
        model_input = ctx.need("model_input", "model")
        ctx.preprocessing = ImagePreprocessing(
            image_size=model_input.image_size,
            resize=cfg.resize or model_input.resize,
            crop_fraction=cfg.crop_fraction,
            sampling=cfg.sampling,
            color_space=cfg.color_space,
            filter=cfg.filter,
            filter_size=cfg.filter_size,
            max_pixels=cfg.max_pixels,
            reduced_decode=cfg.reduced_decode,
        )
        train = ctx.need("train", "load")
        ctx.train_data = decoded_images(train.inputs, train.labels, ctx.preprocessing, cfg.cache)
        ctx.val_data = decoded_images(ctx.val.inputs, ctx.val.labels, ctx.preprocessing, cfg.cache)
        prep = ctx.preprocessing
        return f"{prep.image_size}x{prep.image_size} {prep.resize} ({prep.sampling}), {prep.color_space}, filter {prep.filter}"
