"""Stage `preprocess` (detect): photos decoded and stretched as inference does; boxes as fractions; targets drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class DetectPreprocessConfig:
    """How photos and boxes become tensors, and the box-aware augmentation of training photos."""

    flip: bool = option(True, "flip training photos left-right at random (boxes with them)")
    zoom: list[float] = option([0.75, 1.25], "random zoom window side, as a fraction of the photo: below 1 enlarges "
                                           "objects, above 1 shrinks them inside a grey frame ([1, 1]: off)")
    colour: float = option(0.2, "brightness, contrast and saturation jitter (0: off)")
    mosaic: float = option(0.5, "probability that a training photo is a zoom window of four photos tiled 2 x 2 "
                                "(boxes moved with them; more objects and contexts per photo; 0: off)")
    sampling: str = option("mediapipe", "how photos are resized to the model's size: mediapipe (bilinear on MediaPipe "
                                         "Tasks' grid, so its ObjectDetector, resizing raw photos itself, feeds the "
                                         "model what dlpipe does) or antialias (filtered; smoother when shrinking)")
    cache: bool = option(True, "keep decoded photos in memory after the first epoch")

    def __post_init__(self) -> None:
        require(len(self.zoom) == 2 and 0.1 <= self.zoom[0] <= self.zoom[1] <= 4.0, "zoom",
                f"must be [low, high] with 0.1 <= low <= high <= 4. Received: {self.zoom}")
        require(0.0 <= self.colour < 1.0, "colour", f"must be in [0, 1). Received: {self.colour}")
        require(0.0 <= self.mosaic <= 1.0, "mosaic", f"must be in [0, 1]. Received: {self.mosaic}")
        require(self.sampling in ("mediapipe", "antialias"), "sampling",
                f"must be mediapipe or antialias. Received: {self.sampling}")

    def box_augmentation(self) -> Any:
        """These options as the training photos' BoxAugmentation."""
        from dlpipe.data.box_augment import BoxAugmentation

        return BoxAugmentation(flip=self.flip, zoom_min=self.zoom[0], zoom_max=self.zoom[1], colour=self.colour,
                               mosaic=self.mosaic)


class DetectPreprocessStage(Stage):
    """Decode and stretch photos with the task's own input code; draw CenterNet targets after augmenting."""

    config_cls = DetectPreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.tasks.detect import DetectPreprocessing

        cfg = self.config
        model_input = ctx.need("model_input", "model")
        size = model_input.image_size
        ctx.preprocessing = DetectPreprocessing(image_size=model_input.inference_size or size, resize="stretch",
                                                sampling=cfg.sampling)
        augmentation = cfg.box_augmentation()
        classes = len(ctx.class_names)
        prep = training_preprocessing(ctx)
        ctx.train_data = box_dataset(ctx.train, ctx.task, prep, ctx.class_names, cfg.cache, augmentation)
        ctx.val_data = box_dataset(ctx.val, ctx.task, prep, ctx.class_names, cfg.cache) if len(ctx.val) else None
        return (f"{size}x{size} stretched, heat maps {size // 4}x{size // 4}x{classes}; augmentation: flips "
                f"{'on' if cfg.flip else 'off'}, zoom {cfg.zoom[0]:g}-{cfg.zoom[1]:g}, colour {cfg.colour:g}, mosaic {cfg.mosaic:g}")


def training_preprocessing(ctx: RunContext) -> Any:
    """The run's preprocessing at the size the network trains at (`ctx.preprocessing` is the size it ships at)."""
    import dataclasses

    return dataclasses.replace(ctx.preprocessing, image_size=ctx.need("model_input", "model").image_size)


def box_dataset(examples: Examples, task: Any, prep: Any, class_names: list[str], cache: bool = True,
                augmentation: Any = None) -> Any:
    """Unbatched (pixels (S, S, 3), targets (S/4, S/4, classes + 5)); crowd/difficult boxes are left out."""
    import tensorflow as tf
    from dlpipe.data.box_augment import augment_boxes, augment_group, photo_boxes
    from dlpipe.data.images import tf_path
    from dlpipe.models.centernet_loss import encode_targets
    from dlpipe.models.detector import STRIDE

    boxes = photo_boxes([[(obj.box, class_names.index(obj.label)) for obj in photo if not obj.crowd]
                         for photo in examples.objects])
    paths = tf.data.Dataset.from_tensor_slices([tf_path(p) for p in examples.inputs])
    ds = tf.data.Dataset.zip((paths, boxes))

    def load(path: tf.Tensor, where: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        pixel_boxes, classes = where
        inputs = task.model_input(path, prep)  # the same decode and stretch as inference
        height, width = tf.unstack(tf.cast(inputs["sizes"], tf.float32))
        return inputs["pixels"], pixel_boxes / tf.stack([width, height, width, height]), classes

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if augmentation is not None and augmentation.mosaic > 0:  # each photo opens a group of 4 (shuffled), once
        groups = ds.repeat(4).shuffle(max(len(examples), 1)).ragged_batch(4)
        ds = groups.map(lambda x, b, c: augment_group(x, b, c, augmentation), num_parallel_calls=tf.data.AUTOTUNE)
    elif augmentation is not None and augmentation.active:
        ds = ds.map(lambda x, b, c: augment_boxes(x, b, c, augmentation), num_parallel_calls=tf.data.AUTOTUNE)
    grid = prep.image_size // STRIDE
    return ds.map(lambda x, b, c: (x, encode_targets(b, c, grid, len(class_names))), num_parallel_calls=tf.data.AUTOTUNE)
