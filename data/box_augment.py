"""Box-aware augmentation: every change to a photo moves its boxes with it.

A training photo is (pixels (S, S, 3) float in [0, 255], boxes (M, 4) x1 y1 x2 y2 as fractions of the photo,
classes (M,)). `augment_boxes` flips left-right, zooms (a random window, from inside the photo to past its
edges, resampled to S x S: boxes are moved, clipped, and dropped when less than `keep_visible` of them is
left in view) and jitters colour (brightness, contrast, saturation), all in the TF graph, seeded per call.
`augment_group` adds mosaic (YOLOv4's): with probability `mosaic`, four photos tiled 2 x 2 and a window of the
zoom range (at the photos' own scale) cut from the tiling, so a training photo shows more objects, cut by edges,
on mixed backgrounds; what a few hundred labelled photos need most against over-fitting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf

FILL = 114.0  # grey where a zoom-out window reaches past the photo (what YOLO-style letterboxing uses)


@dataclass(frozen=True)
class BoxAugmentation:
    """What `augment_boxes` does: flip, zoom range (window side as a fraction of the photo), colour jitter."""

    flip: bool = True
    zoom_min: float = 0.6  # a window 0.6 of the photo wide: objects 1.7x larger
    zoom_max: float = 1.4  # 1.4 of the photo: objects 0.7x, the photo framed in grey
    aspect_jitter: float = 0.15  # each side of the window varies by up to this fraction independently
    colour: float = 0.2  # brightness (x 255), contrast and saturation change by up to this fraction
    keep_visible: float = 0.4  # a clipped box stays a target when at least this fraction of it is in view
    mosaic: float = 0.0  # probability that a training photo is a window of four photos tiled 2 x 2

    @property
    def active(self) -> bool:
        return self.flip or self.zoom_min != 1.0 or self.zoom_max != 1.0 or self.colour > 0 or self.mosaic > 0


def photo_boxes(photos: Sequence[Sequence[tuple[Sequence[float], int]]]) -> tf.data.Dataset:
    """Each photo's (box, class index) pairs -> a dataset of (boxes (M, 4) float32, classes (M,) int32), photo by
    photo (M may be 0: a photo without boxes is a negative)."""
    lengths = [len(photo) for photo in photos]
    boxes = np.asarray([box for photo in photos for box, _ in photo], np.float32).reshape(-1, 4)
    classes = np.asarray([index for photo in photos for _, index in photo], np.int32)
    return tf.data.Dataset.from_tensor_slices((tf.RaggedTensor.from_row_lengths(boxes, lengths),
                                               tf.RaggedTensor.from_row_lengths(classes, lengths)))


def augment_boxes(pixels: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor,
                  spec: BoxAugmentation) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One random augmentation of a photo and its boxes (see the module docstring)."""
    size = tf.shape(pixels)[:2]
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4))
    if spec.flip:
        flip = tf.random.uniform(()) < 0.5
        pixels = tf.cond(flip, lambda: tf.reverse(pixels, axis=[1]), lambda: pixels)
        boxes = tf.cond(flip, lambda: tf.stack([1.0 - boxes[:, 2], boxes[:, 1], 1.0 - boxes[:, 0], boxes[:, 3]], 1),
                        lambda: boxes)
    if spec.zoom_min != 1.0 or spec.zoom_max != 1.0:
        pixels, boxes, classes = _zoom(pixels, boxes, classes, size, spec)
    if spec.colour > 0:
        pixels = _colour(pixels, spec.colour)
    return pixels, boxes, classes


def augment_group(pixels: tf.Tensor, boxes: tf.RaggedTensor, classes: tf.RaggedTensor,
                  spec: BoxAugmentation) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Four photos (4, S, S, 3) with ragged boxes (4, None, 4) and classes -> one augmented photo: with probability
    `spec.mosaic` a zoom window of their 2 x 2 tiling, else the first photo zoomed alone; then flip and colour."""
    size = tf.shape(pixels)[1:3]

    def tiled() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        canvas, moved, labels = mosaic_canvas(pixels, boxes, classes)
        half = dataclasses.replace(spec, zoom_min=spec.zoom_min / 2.0, zoom_max=spec.zoom_max / 2.0)
        return _zoom(canvas, moved, labels, size, half)

    def single() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        first = pixels[0], tf.reshape(boxes[0], (-1, 4)), classes[0]
        return _zoom(*first, size, spec) if spec.zoom_min != 1.0 or spec.zoom_max != 1.0 else first

    photo_shape = pixels.shape[1:]  # the group's batch axis is unknown, so its tf.shape is not a constant
    pixels, boxes, classes = tf.cond(tf.random.uniform(()) < spec.mosaic, tiled, single)
    pixels = tf.ensure_shape(pixels, photo_shape)  # a model with fixed-size layers needs the static shape
    return augment_boxes(pixels, boxes, classes, dataclasses.replace(spec, zoom_min=1.0, zoom_max=1.0))


def mosaic_canvas(pixels: tf.Tensor, boxes: tf.RaggedTensor,
                  classes: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Photos 0-3 tiled left to right, top to bottom into (2S, 2S, 3); their boxes as fractions of the tiling."""
    canvas = tf.concat([tf.concat([pixels[0], pixels[1]], axis=1), tf.concat([pixels[2], pixels[3]], axis=1)], axis=0)
    moved = [tf.reshape(boxes[i], (-1, 4)) * 0.5 + tf.constant([x, y, x, y], tf.float32)
             for i, (x, y) in enumerate(((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)))]
    return canvas, tf.concat(moved, axis=0), tf.concat([classes[i] for i in range(4)], axis=0)


def _zoom(pixels: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, size: tf.Tensor,
          spec: BoxAugmentation) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    side = tf.random.uniform((), spec.zoom_min, spec.zoom_max)
    sides = side * tf.random.uniform((2,), 1.0 - spec.aspect_jitter, 1.0 + spec.aspect_jitter)  # (height, width)
    low, high = tf.minimum(0.0, 1.0 - sides), tf.maximum(0.0, 1.0 - sides)
    origin = low + tf.random.uniform((2,)) * (high - low)  # (y, x) of the window's corner
    window = tf.concat([origin, origin + sides], axis=0)[None]  # y1 x1 y2 x2
    pixels = tf.image.crop_and_resize(pixels[None], window, [0], size, extrapolation_value=FILL)[0]
    scale = tf.stack([sides[1], sides[0], sides[1], sides[0]])
    shift = tf.stack([origin[1], origin[0], origin[1], origin[0]])
    moved = (boxes - shift) / scale
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    area = lambda b: tf.maximum(b[:, 2] - b[:, 0], 0.0) * tf.maximum(b[:, 3] - b[:, 1], 0.0)
    minimum = 2.0 / tf.cast(tf.reduce_max(size), tf.float32)  # at least 2 pixels each way
    keep = ((area(clipped) >= spec.keep_visible * area(moved)) & (clipped[:, 2] - clipped[:, 0] >= minimum)
            & (clipped[:, 3] - clipped[:, 1] >= minimum))
    return pixels, tf.boolean_mask(clipped, keep), tf.boolean_mask(classes, keep)


def _colour(pixels: tf.Tensor, amount: float) -> tf.Tensor:
    pixels = pixels + tf.random.uniform((), -amount, amount) * 255.0
    mean = tf.reduce_mean(pixels, axis=[0, 1], keepdims=True)
    pixels = (pixels - mean) * tf.random.uniform((), 1.0 - amount, 1.0 + amount) + mean
    grey = tf.reduce_mean(pixels, axis=-1, keepdims=True)
    pixels = (pixels - grey) * tf.random.uniform((), 1.0 - amount, 1.0 + amount) + grey
    return tf.clip_by_value(pixels, 0.0, 255.0)


__all__ = ["BoxAugmentation", "augment_boxes", "augment_group", "mosaic_canvas"]
