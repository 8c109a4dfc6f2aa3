"""Test-time augmentation baked into the model, so every export and runtime does it too.

A photo of an ant is still an ant in a mirror: averaging the class
probabilities of the image and its horizontal mirror removes some of the
variance of a model trained on a few hundred photos, at twice the inference cost.
"""

from __future__ import annotations

import keras

from dlpipe.models.layers import HorizontalFlip


def with_flip_tta(model: keras.Model) -> keras.Model:
    """A model taking the same pixels that returns the mean probabilities of each image and its mirror."""
    if is_tta(model):
        return model
    inputs = keras.Input(shape=model.input_shape[1:], dtype="float32", name="image")
    plain = model(inputs)
    mirrored = model(HorizontalFlip(name="tta_flip")(inputs))
    outputs = keras.layers.Average(name="tta_mean")([plain, mirrored])
    return keras.Model(inputs, outputs, name=f"{model.name}_tta")


def with_tta(model: keras.Model, tta: str) -> keras.Model:
    """The model an evaluate stage ships for its `tta` setting: `model` itself ("none") or its flip wrapper ("flip")."""
    if tta not in ("none", "flip"):
        raise ValueError(f"tta must be 'none' or 'flip'. Received: tta={tta!r}")
    return with_flip_tta(model) if tta == "flip" else model


def is_tta(model: keras.Model) -> bool:
    """True when `model` was made by `with_flip_tta`."""
    return any(layer.name == "tta_flip" for layer in model.layers)
