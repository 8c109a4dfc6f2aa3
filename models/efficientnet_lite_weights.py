"""EfficientNet-Lite's ImageNet weights: how each PyTorch state-dict tensor maps onto the Keras port, checked whole.

Kept apart from the architecture (`efficientnet_lite`) so each module has one job; `efficientnet_lite`
re-exports `load_imagenet_weights` and `weight_map`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from dlpipe.errors import DataError

if TYPE_CHECKING:
    import keras

    from dlpipe.models.efficientnet_lite import LiteVariant

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


def weight_map(include_top: bool, variant: "str | LiteVariant" = "efficientnet_lite0") -> dict[str, list[tuple[str, str]]]:
    """Keras layer name -> [(state-dict name, conversion)] in the order of `layer.weights`.

    The trap: at model level `_bn0`/`_bn1` are the stem and head BNs, inside a block
    `_bn0` follows the expansion conv and `_bn1` the depthwise conv.
    """
    from dlpipe.models import efficientnet_lite as lite

    mapping = {"stem_conv": [("_conv_stem.weight", "conv")], "stem_bn": _bn_sources("_bn0")}
    for index, row in enumerate(lite.block_rows(variant)):
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


def load_imagenet_weights(model: "keras.Model", state: dict[str, np.ndarray], source: str | None = None,
                          variant: "str | LiteVariant" = "efficientnet_lite0") -> None:
    """Copy a state dict of `variant` into `model` after checking it all fits; nothing is assigned on error.

    Checks: every tensor is used exactly once (`num_batches_tracked` counters, and `_fc.*`
    when the model has no top, are deliberately skipped), every shape matches, and every
    weight of the model gets a value. Raises DataError naming `source` and the first problem,
    so another variant's file (Lite1's 21 blocks into Lite0's 16) is refused, not half-loaded.
    """
    from dlpipe.models import efficientnet_lite as lite

    spec = lite.get_variant(variant)
    source = source or spec.weights_file
    include_top = any(layer.name == "predictions" for layer in model.layers)
    mapping = weight_map(include_top, spec)
    _check_names(mapping, state, include_top, spec, source)
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
        raise DataError(source, f"no weights for layers {unfilled[:3]} (is this an {spec.title}?)")
    for layer, values in assignments:
        layer.set_weights(values)


def _check_names(mapping: dict[str, list[tuple[str, str]]], state: dict[str, np.ndarray], include_top: bool,
                 spec: "LiteVariant", source: str) -> None:
    """Every mapped tensor exists once in `state`, and `state` has nothing the model would leave unused."""
    counts = Counter(name for sources in mapping.values() for name, _ in sources)
    if doubled := sorted(name for name, count in counts.items() if count > 1):
        raise DataError(source, f"tensors mapped more than once: {doubled[:3]}")
    missing = sorted(set(counts) - set(state))
    ignored = {name for name in state if name.endswith(".num_batches_tracked")}
    if not include_top:
        ignored |= {name for name in state if name.startswith("_fc.")}
    unused = sorted(set(state) - set(counts) - ignored)
    if missing or unused:
        raise DataError(source, f"the state dict does not fit {spec.title}: {len(missing)} missing "
                        f"(e.g. {missing[:3]}), {len(unused)} unused (e.g. {unused[:3]})")
