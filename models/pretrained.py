"""Ready-made models users can call by name, e.g. to check that a backbone works.

`efficientnet-lite0-imagenet`, `-lite1-` and `-lite2-` are the ported
EfficientNet-Lite variants with their 1000-class ImageNet heads: each takes raw
RGB pixels in [0, 255] at its own size (224, 240, 260), like every dlpipe
classifier, and returns class probabilities.
"""

from __future__ import annotations

import functools
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


def efficientnet_lite_imagenet(variant: str) -> NamedModel:
    """The variant with its ImageNet head, normalisation inside, and its own resize/crop recipe."""
    from dlpipe.models import efficientnet_lite as lite

    spec = lite.get_variant(variant)
    size = spec.input_size
    network = lite.efficientnet_lite(spec, include_top=True, weights="imagenet", input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocess("efficientnet_lite", name="normalize")(inputs)
    outputs = network(x)
    if getattr(network.layers[-1], "activation", None) is not keras.activations.softmax:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")
    prep = ImagePreprocessing(image_size=size, resize="crop", crop_fraction=size / spec.resize_size)
    return NamedModel(model, lite.imagenet_labels(), prep)


def _register_lite_models() -> None:
    """`efficientnet-liteN-imagenet` for each variant (names known here, so no TF work at import)."""
    for variant in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        name = variant.replace("_", "-") + "-imagenet"
        NAMED_MODELS.add(name, functools.partial(efficientnet_lite_imagenet, variant))


_register_lite_models()
