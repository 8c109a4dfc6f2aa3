"""Stage `preprocess` (segment): photos decoded and stretched as inference does; masks resized nearest-neighbour."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class SegmentPreprocessConfig:
    """How photos and masks become tensors, and the training-time flips."""

    flip: bool = option(True, "flip each training pair left-right at random (image and mask together)")
    cache: bool = option(True, "keep decoded images in memory after the first epoch")

    def __post_init__(self) -> None:
        pass


class SegmentPreprocessStage(Stage):
    """Decode and stretch photos to the model's size (the code inference uses); masks resized nearest-neighbour."""

    config_cls = SegmentPreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.tasks.segment import SegmentPreprocessing

        model_input = ctx.need("model_input", "model")
        ctx.preprocessing = SegmentPreprocessing(image_size=model_input.image_size)
        ctx.train_data = pair_dataset(ctx.train, ctx.preprocessing, self.config.cache, self.config.flip, ctx.seed)
        ctx.val_data = pair_dataset(ctx.val, ctx.preprocessing, self.config.cache) if len(ctx.val) else None
        return f"{model_input.image_size}x{model_input.image_size} stretched, flips {'on' if self.config.flip else 'off'}"


def pair_dataset(examples: Examples, prep, cache: bool = True, flip: bool = False, seed: int = 0):
    """Unbatched (pixels (S, S, 3) float32, mask (S, S) int32) pairs; masks are read once, with Pillow."""
    import numpy as np
    import tensorflow as tf

    from dlpipe.data.augment import flip_pair
    from dlpipe.data.images import tf_path
    from dlpipe.data.masks import read_mask
    from dlpipe.data.preprocess import load_image

    masks = np.stack([read_mask(path, prep.image_size) for path in examples.targets]).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices(([tf_path(p) for p in examples.inputs], masks))
    ds = ds.map(lambda p, m: (load_image(p, prep), m), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if flip:
        ds = ds.map(flip_pair(seed), num_parallel_calls=tf.data.AUTOTUNE)
    return ds
