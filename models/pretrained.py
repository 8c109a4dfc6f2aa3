"""Ready-made models users can call by name, e.g. to check that a backbone works.

`efficientnet-lite0-imagenet`, `-lite1-` and `-lite2-` are the ported
EfficientNet-Lite variants with their 1000-class ImageNet heads: each takes raw
RGB pixels in [0, 255] at its own size (224, 240, 260), like every dlpipe
classifier, and returns class probabilities. A named model loads as a
runtime, like any exported artifact. `coco-detector` is the offline COCO
detector of `dlpipe.models.coco_detector` (the detect task: boxes, labels,
scores), set up once by scripts/fetch_coco_detector.sh.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dlpipe.registry import Registry

if TYPE_CHECKING:
    from dlpipe.models.runtimes import KerasRuntime

NAMED_MODELS: Registry[Callable[[], "KerasRuntime"]] = Registry("named model")


def efficientnet_lite_imagenet(variant: str) -> "KerasRuntime":
    """The variant with its ImageNet head, normalisation inside, and its own resize/crop recipe."""
    import keras

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import efficientnet_lite as lite
    from dlpipe.models.artifacts import SideFiles
    from dlpipe.models.layers import ImagePreprocess
    from dlpipe.models.runtimes import KerasRuntime

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
    side = SideFiles(Path("."), "image", lite.imagenet_labels(), {"task": "image", **prep.to_dict()})
    return KerasRuntime.from_model(model, side, f"{variant.replace('_', '-')}-imagenet")


def _register_lite_models() -> None:
    """`efficientnet-liteN-imagenet` for each variant (names known here, so no TF work at import)."""
    for variant in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        name = variant.replace("_", "-") + "-imagenet"
        NAMED_MODELS.add(name, functools.partial(efficientnet_lite_imagenet, variant))


_register_lite_models()


def _coco_detector() -> "KerasRuntime":
    from dlpipe.models.coco_detector import coco_detector_runtime

    return coco_detector_runtime()


NAMED_MODELS.add("coco-detector", _coco_detector)
