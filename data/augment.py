"""On-the-fly augmentation for the training branch only.

Built from seeded Keras `Random*` layers, which work inside `tf.data` and are
the identity at inference; they act on float pixels in [0, 255]. An image and
its mask (segmentation) are flipped together by `flip_pair`; masks of any
depth move with their photo through every geometric layer in `augment_with_masks`.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf
from keras import layers

FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")


def build_augmenter(
    flip: str = "horizontal",
    rotation: float = 0.0,
    zoom: float = 0.0,
    translation: float = 0.0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> keras.Sequential | None:
    """A Sequential of the enabled augmentations, or None when all are off.

    rotation is a fraction of a full turn; zoom, translation, brightness and
    contrast are fractions of the image (Keras conventions); noise is the
    Gaussian standard deviation as a fraction of the pixel range.
    """
    if flip not in FLIP_MODES:
        raise ValueError(f"`flip` must be one of {list(FLIP_MODES)}. Received: flip={flip!r}")
    steps: list[keras.layers.Layer] = []
    if flip != "none":
        steps.append(layers.RandomFlip(flip, seed=seed))
    if rotation:
        steps.append(layers.RandomRotation(rotation, fill_mode="reflect", seed=seed + 1))
    if zoom:
        steps.append(layers.RandomZoom(zoom, fill_mode="reflect", seed=seed + 2))
    if translation:
        steps.append(layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=seed + 3))
    if brightness:
        steps.append(layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed + 4))
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 5))
    if noise:
        # GaussianNoise takes a standard deviation in [0, 1]: apply it on the [0, 1] scale
        steps += [layers.Rescaling(1 / 255.0), layers.GaussianNoise(noise, seed=seed + 6), layers.Rescaling(255.0)]
    if not steps:
        return None
    return keras.Sequential(steps, name="augment")


def augment_batch(augmenter: keras.Sequential, images: tf.Tensor) -> tf.Tensor:
    """Apply the augmenter in training mode and keep pixels in [0, 255]."""
    return tf.clip_by_value(augmenter(images, training=True), 0.0, 255.0)


GEOMETRIC_LAYERS = (layers.RandomFlip, layers.RandomRotation, layers.RandomZoom, layers.RandomTranslation)


def augment_with_masks(augmenter: keras.Sequential, images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment images (batch, H, W, C) and their masks (batch, H, W, M) with the same random geometry.

    The geometric layers move both as one tensor (stacked on channels, one draw per photo); the photometric ones
    (brightness, contrast, noise) touch the photo only.
    """
    channels = images.shape[-1]
    both = tf.concat([images, masks], axis=-1)
    for layer in augmenter.layers:
        if isinstance(layer, GEOMETRIC_LAYERS):
            both = layer(both, training=True)
    images, masks = both[..., :channels], both[..., channels:]
    for layer in augmenter.layers:
        if not isinstance(layer, GEOMETRIC_LAYERS):
            images = layer(images, training=True)
    return tf.clip_by_value(images, 0.0, 255.0), masks


def flip_pair(seed: int = 0) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A tf.data map flipping an image (H, W, C) and its mask (H, W) left-right together, half the time.

    The Random* layers above draw for each tensor on their own, so they would part a mask from its photo.
    """

    def flip(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        flipped = tf.random.uniform([], seed=seed) < 0.5
        return (tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image),
                tf.cond(flipped, lambda: tf.reverse(mask, [1]), lambda: mask))

    return flip
