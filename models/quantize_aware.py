"""Quantisation-aware fine-tuning: the same network with every activation rounded to int8 at fixed ranges.

Why: post-training int8 gives each tensor one 8-bit scale, and the rounding adds up over ~60 layers (the detect
task's COCO start lost 5.4 mAP points). Fine-tuning a few epochs with the rounding in the forward pass
(straight-through gradients) lets the weights adapt to it. The ranges are fixed before the fine-tuning, from the
same statistics the int8 export calibrates with (each tensor's extremes, or their 99.99th percentile where the
export narrows them: models/export/percentile_ranges.py), so training rounds where the export will round.

`int8_rounded(model)` shares every layer (and weight) with `model`: fitting it trains `model`, which then exports
as usual; the rounding layers have no weights. Layers whose output TFLite fuses into the next op (a convolution
into its batch norm or ReLU) are not rounded, since that tensor does not exist in the int8 file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlpipe.models.export.percentile_ranges import percentile_range, sampled

FUSED_ACTIVATIONS = ("relu", "relu6")


@keras.saving.register_keras_serializable(package="dlpipe")
class Int8Rounding(keras.layers.Layer):
    """Round to the 256 levels of [low, high] in the forward pass; gradients pass straight through inside the range.

    Until `low`/`high` are set (None) it passes values through, and while `observed` is a list (eager calls only),
    it appends a sample of each output to it: how the ranges are measured.
    """

    def __init__(self, low: float | None = None, high: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = low, high
        self.observed: list[np.ndarray] | None = None

    def call(self, inputs):
        if self.observed is not None:
            self.observed.append(sampled(inputs, np.random.default_rng(len(self.observed))))
        if self.low is None or self.high is None:
            return inputs
        return tf.quantization.fake_quant_with_min_max_args(inputs, min=self.low, max=self.high, num_bits=8)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


def int8_rounded(model: keras.Model) -> keras.Model:
    """`model` with an Int8Rounding after each layer whose output int8 keeps (nested models included), sharing
    its layers: the rounding layers start as pass-through until `set_ranges`."""
    fused = _fused_outputs(model)

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = layer(*args, **kwargs)
        if isinstance(layer, keras.Model) or id(layer) in fused or not isinstance(outputs, keras.KerasTensor):
            return outputs
        return Int8Rounding(name=f"{layer.name}_int8")(outputs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call, recursive=True)


def rounding_layers(model: keras.Model) -> list[Int8Rounding]:
    """Every Int8Rounding of `model`, nested models included, in graph order."""
    found: list[Int8Rounding] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(rounding_layers(layer))
        elif isinstance(layer, Int8Rounding):
            found.append(layer)
    return found


def measure_ranges(model: keras.Model, batches: Iterable[Any], keep_extremes: str | None,
                   percentile: float | None) -> dict[str, tuple[float, float]]:
    """Each rounding layer's range over `batches` (images, or (images, targets)): the extremes seen, or the
    `percentile`-th percentile and its mirror (always including 0) except for the layers whose wrapped layer's
    name matches `keep_extremes` (e.g. a detector's head outputs, whose top values are its detections)."""
    layers = rounding_layers(model)
    for layer in layers:
        layer.observed = []
    try:
        for batch in batches:
            model(batch[0] if isinstance(batch, tuple) else batch, training=False)
    finally:
        observed = {layer.name: np.concatenate(layer.observed) for layer in layers}
        for layer in layers:
            layer.observed = None
    ranges = {}
    for name, values in observed.items():
        low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        if percentile is not None and not (keep_extremes and re.search(keep_extremes, name.removesuffix("_int8"))):
            low, high = percentile_range(values, low, high, percentile)
        ranges[name] = (low, high) if high > low else (low, low + 1e-6)
    return ranges


def set_ranges(model: keras.Model, ranges: dict[str, tuple[float, float]]) -> None:
    """Fix each rounding layer's range (measure_ranges' answer, or the same read back from a file)."""
    layers = rounding_layers(model)
    missing = [layer.name for layer in layers if layer.name not in ranges]
    if missing:
        raise ValueError(f"no int8 range for {len(missing)} of {len(layers)} rounded layers (e.g. {missing[0]}): "
                         "measure them on this model (measure_ranges)")
    for layer in layers:
        layer.low, layer.high = (float(v) for v in ranges[layer.name])


def _fused_outputs(model: keras.Model) -> set[int]:
    """ids of the layers whose only reader is a batch norm or a ReLU/ReLU6 activation: TFLite folds or fuses that
    reader into the layer's op, so their own output is never an int8 tensor. Readers are counted in the model's
    own graph (its config), not in every graph a shared layer was called in."""
    fused: set[int] = set()
    readers: dict[str, list[str]] = {}
    for entry in model.get_config()["layers"]:
        for producer in _history_names(entry.get("inbound_nodes", [])):
            readers.setdefault(producer, []).append(entry["name"])
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            fused |= _fused_outputs(layer)
            continue
        names = readers.get(layer.name, [])
        if len(names) == 1 and _fuses_into_writer(model.get_layer(names[0])):
            fused.add(id(layer))
    return fused


def _history_names(value: Any) -> list[str]:
    """The producing layers' names in a functional config's serialised call arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [name for item in value.values() for name in _history_names(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _history_names(item)]
    return []


def _fuses_into_writer(layer: Any) -> bool:
    if isinstance(layer, keras.layers.BatchNormalization):
        return True
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value in (None, 6.0) and not layer.negative_slope and not layer.threshold
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    return isinstance(layer, keras.layers.Activation) and activation in FUSED_ACTIVATIONS
