"""Box-aware augmentation: every change to a photo moves its boxes with it.

A training photo is (pixels (S, S, 3) float in [0, 255], boxes (M, 4) x1 y1 x2 y2 as fractions of the photo,
classes (M,)). `augment_boxes` flips left-right, zooms (a random window, from inside the photo to past its
edges, resampled to S x S: boxes are moved, clipped, and dropped when less than `keep_visible` of them is
left in view) and jitters colour (brightness, contrast, saturation), all in the TF graph, seeded per call.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def active(self) -> bool:
        return self.flip or self.zoom_min != 1.0 or self.zoom_max != 1.0 or self.colour > 0


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


__all__ = ["BoxAugmentation", "augment_boxes"]
