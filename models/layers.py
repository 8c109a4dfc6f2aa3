"""Keras layers that travel inside dlpipe models.

Normalisation lives in the model rather than in the input pipeline, so a saved
or exported model takes raw RGB pixels in [0, 255] and nobody has to remember a
backbone's mean and standard deviation at inference time.
"""

from __future__ import annotations

import keras
from keras import ops

# name -> what the mode does to RGB pixels in [0, 255]
NORMALIZATION_MODES = {
    "none": "pass pixels through unchanged (the backbone normalises itself)",
    "unit": "scale to [0, 1]",
    "standardize": "per-image, per-channel zero mean and unit variance",
    "tf": "scale to [-1, 1] (MobileNet, Inception)",
    "caffe": "RGB->BGR, subtract the ImageNet BGR mean (ResNet, VGG)",
    "torch": "scale to [0, 1], subtract the ImageNet mean, divide by its std",
    "efficientnet_lite": "(x - 127) / 128 (EfficientNet-Lite)",
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="dlpipe")
class ImagePreprocess(keras.layers.Layer):
    """Normalise raw RGB pixels the way a backbone expects.

    Args:
        mode: one of `NORMALIZATION_MODES`.

    Call arguments:
        inputs: float tensor (batch, height, width, 3) of pixels in [0, 255].
    """

    def __init__(self, mode: str = "unit", **kwargs):
        super().__init__(**kwargs)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(
                f"`mode` must be one of {sorted(NORMALIZATION_MODES)}. Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.mode == "none":
            return x
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "standardize":
            mean = ops.mean(x, axis=(1, 2), keepdims=True)
            std = ops.std(x, axis=(1, 2), keepdims=True)
            return (x - mean) / ops.maximum(std, 1.0 / 255.0)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, "float32")
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_IMAGENET_MEAN, "float32")
            std = ops.convert_to_tensor(_IMAGENET_STD, "float32")
            return (x / 255.0 - mean) / std
        return (x - 127.0) / 128.0  # efficientnet_lite

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="dlpipe")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left to right (test-time augmentation: the model averages a photo and its mirror).

    Call arguments:
        inputs: tensor (batch, height, width, channels).
    """

    def call(self, inputs):
        return ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="dlpipe")
class LogSumExpPooling(keras.layers.Layer):
    """Pool per-location class logits over the image by log-sum-exp (multiple-instance pooling, as in WILDCAT).

    (1/r) log(mean(exp(r z))) lies between the average (r -> 0) and the maximum (r -> inf) of the logits, so a
    label scored high at a few locations (a small thing in a large scene) is not averaged away as global average
    pooling does. It commutes with a constant shift of the logits (a folded threshold stays exact).

    Args:
        sharpness: r, above 0.

    Call arguments:
        logits: (batch, height, width, classes).
    """

    def __init__(self, sharpness: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        if not sharpness > 0:
            raise ValueError(f"sharpness must be above 0. Received: sharpness={sharpness}")
        self.sharpness = float(sharpness)

    def call(self, logits):
        top = ops.max(logits, axis=(1, 2), keepdims=True)  # subtracted first: exp never overflows
        spread = ops.mean(ops.exp(self.sharpness * (logits - top)), axis=(1, 2))
        return ops.squeeze(top, axis=(1, 2)) + ops.log(spread) / self.sharpness

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "sharpness": self.sharpness}
