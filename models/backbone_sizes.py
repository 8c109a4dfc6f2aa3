"""The smallest input each image backbone builds at, known without importing Keras.

`dlpipe run` checks `model.image_size` against it before TensorFlow is imported (a stage's
preflight), so `image_size=8` with `small_cnn` is one line in a second instead of Keras'
"Exception encountered when calling MaxPooling2D.call()" after the data is loaded.
"""

from __future__ import annotations

from dlpipe.errors import ConfigError

SMALLEST_BUILDABLE = 8  # backbones not listed build at any size dlpipe accepts (model.image_size >= 8)
MIN_INPUT_SIZE = {
    "small_cnn": 16,  # four 2x2 poolings down to 1x1
    "mobilenet_v2": 32,  # keras.applications refuses smaller inputs
    "efficientnet_b0": 32,
    "resnet50": 32,
}


def min_input_size(backbone: str) -> int:
    return MIN_INPUT_SIZE.get(backbone, SMALLEST_BUILDABLE)


def check_input_size(backbone: str, size: int) -> None:
    """ConfigError when `size` is below what `backbone` can be built at."""
    smallest = min_input_size(backbone)
    if size < smallest:
        raise ConfigError("model.image_size", f"{backbone} needs inputs of at least {smallest} px (received "
                                              f"{size}); set model.image_size={smallest} or more, or pick a "
                                              "backbone such as mlp for tiny images")
