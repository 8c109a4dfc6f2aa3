"""Ready-made models users can call by name, e.g. to check that a backbone works.

`efficientnet-lite0-imagenet` is the ported EfficientNet-Lite0 with its
1000-class ImageNet head: it takes raw RGB pixels in [0, 255], like every
dlpipe classifier, and returns class probabilities. A named model loads as a
runtime, like any exported artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dlpipe.registry import Registry

if TYPE_CHECKING:
    from dlpipe.models.runtimes import KerasRuntime

NAMED_MODELS: Registry[Callable[[], "KerasRuntime"]] = Registry("named model")


@NAMED_MODELS.register("efficientnet-lite0-imagenet")
def efficientnet_lite0_imagenet() -> "KerasRuntime":
    import keras

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import efficientnet_lite as lite
    from dlpipe.models.artifacts import SideFiles
    from dlpipe.models.layers import ImagePreprocess
    from dlpipe.models.runtimes import KerasRuntime

    size = lite.DEFAULT_SIZE
    network = lite.efficientnet_lite0(include_top=True, weights="imagenet", input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocess("efficientnet_lite", name="normalize")(inputs)
    outputs = network(x)
    if getattr(network.layers[-1], "activation", None) is not keras.activations.softmax:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_imagenet")
    prep = ImagePreprocessing(image_size=size, resize="crop", crop_fraction=size / lite.RESIZE_SIZE)
    side = SideFiles(Path("."), "image", lite.imagenet_labels(), {"task": "image", **prep.to_dict()})
    return KerasRuntime.from_model(model, side, "efficientnet-lite0-imagenet")
