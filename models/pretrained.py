"""Ready-made models users can call by name, e.g. to check that a backbone works.

`efficientnet-lite0-imagenet` is the ported EfficientNet-Lite0 with its
1000-class ImageNet head: it takes raw RGB pixels in [0, 255], like every
dlpipe classifier, and returns class probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from dlpipe.data.preprocess import ImagePreprocessing
from dlpipe.models.layers import ImagePreprocess
from dlpipe.registry import Registry


@dataclass(frozen=True)
class NamedModel:
    """A model with its labels and the preprocessing its weights expect."""

    model: keras.Model
    class_names: list[str]
    preprocessing: ImagePreprocessing


NAMED_MODELS: Registry[Callable[[], NamedModel]] = Registry("named model")


@NAMED_MODELS.register("efficientnet-lite0-imagenet")
def efficientnet_lite0_imagenet() -> NamedModel:
    from dlpipe.models import efficientnet_lite as lite

    size = lite.DEFAULT_SIZE
    network = lite.efficientnet_lite0(include_top=True, weights="imagenet", input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocess("efficientnet_lite", name="normalize")(inputs)
    outputs = network(x)
    if getattr(network.layers[-1], "activation", None) is not keras.activations.softmax:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_imagenet")
    prep = ImagePreprocessing(image_size=size, resize="crop", crop_fraction=size / lite.RESIZE_SIZE)
    return NamedModel(model, lite.imagenet_labels(), prep)
