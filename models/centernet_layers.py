"""The graph ops of the ported CenterNet that Keras has no layer for, as serialisable layers.

Why custom layers: the TF.js graph (models/centernet_port.py) adds and multiplies by scalar
constants (hard-swish's `+ 3` and `* 0.16662598`, the float16 value of 1/6 the graph stores, and
the box head's `* 16`), and upsamples with TF1's legacy bilinear resize (align_corners=False,
half_pixel_centers=False). Keras' Rescaling would add dead ops, and its UpSampling2D /
ops.image.resize sample at half-pixel centres, which shifts every upsampled value. Both layers
save in a `.keras` file (no Lambda) and convert to TFLite builtins (MUL/ADD, RESIZE_BILINEAR).
ClampedLog (LOG, MAXIMUM) lets the pretrained box head answer in log-distances (models/centernet_start.py).
HardSwish stands for the graph's four-op hard-swish so that TFLite converts it to its one HARD_SWISH op.
"""

from __future__ import annotations

import keras

SCALAR_OPS = ("add", "mul")


@keras.saving.register_keras_serializable(package="dlpipe")
class ScalarOp(keras.layers.Layer):
    """`x + value` or `x * value` with a fixed scalar, as the graph's Add/Mul by a constant does.

    Args:
        op: "add" or "mul".
        value: the graph's constant (kept exactly, e.g. float16's 1/6 = 0.16662598).

    Call arguments:
        inputs: float tensor of any shape.
    """

    def __init__(self, op: str = "mul", value: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if op not in SCALAR_OPS:
            raise ValueError(f"`op` must be one of {SCALAR_OPS}. Received: op={op!r}")
        self.op = op
        self.value = float(value)

    def call(self, inputs):
        return inputs + self.value if self.op == "add" else inputs * self.value

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "op": self.op, "value": self.value}


@keras.saving.register_keras_serializable(package="dlpipe")
class LegacyBilinearUpsample(keras.layers.Layer):
    """Bilinear upsampling by an integer factor with TF1's corner convention (as the graph's ResizeBilinear).

    Output pixel i samples input position i / factor (not (i + 0.5) / factor - 0.5 as Keras' own
    resize does). TensorFlow backend only: it calls tf.compat.v1.image.resize_bilinear.

    Args:
        factor: the integer scale of both spatial axes.

    Call arguments:
        inputs: float tensor (batch, height, width, channels).
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(factor) != factor or factor < 1:
            raise ValueError(f"`factor` must be a positive integer. Received: factor={factor!r}")
        self.factor = int(factor)

    def call(self, inputs):
        import tensorflow as tf

        static = inputs.shape[1:3]
        size = [d * self.factor for d in static] if None not in static else tf.shape(inputs)[1:3] * self.factor
        return tf.compat.v1.image.resize_bilinear(inputs, size, align_corners=False, half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        scaled = [None if d is None else d * self.factor for d in input_shape[1:3]]
        return (input_shape[0], *scaled, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="dlpipe")
class ClampedLog(keras.layers.Layer):
    """`log(max(x, floor))`: turns positive distances into the log-distances a head may be trained to give.

    Args:
        floor: the smallest value taken (its log is the output's minimum; no gradient flows below it).

    Call arguments:
        inputs: float tensor of any shape.
    """

    def __init__(self, floor: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if not floor > 0:
            raise ValueError(f"`floor` must be positive. Received: floor={floor!r}")
        self.floor = float(floor)

    def call(self, inputs):
        return keras.ops.log(keras.ops.maximum(inputs, self.floor))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package="dlpipe")
class HardSwish(keras.layers.Layer):
    """`x * relu6(x + 3) / 6`, written so that the TFLite converter fuses it into one HARD_SWISH op.

    Why not the graph's own ops: the TF.js graph spells hard-swish as `(x * c) * relu6(x + 3)` with c the
    float16 value of 1/6 (0.16662598). TFLite matches only `x * relu6(x + 3) * (1/6)` with an exact 1/6, so
    the graph's form stays four ops, and a full-integer int8 file rounds each of their outputs to 8 bits:
    on 20 photos, ported COCO start, the heat map at its peaks moved 0.30 (mean |probability change|) against
    0.12 with one HARD_SWISH, which takes int8 in and out and computes the rest at higher precision. The exact
    1/6 moves each activation by 0.024% of itself.

    Call arguments:
        inputs: float tensor of any shape.
    """

    def call(self, inputs):
        return inputs * keras.ops.relu6(inputs + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return input_shape
