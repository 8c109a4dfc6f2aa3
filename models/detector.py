"""A trainable anchor-free detector: a pretrained encoder, a light feature pyramid, CenterNet's three heads.

Why this design: CenterNet ("Objects as Points", Zhou et al. 2019) finds objects as peaks of a per-class
heat map at stride 4 and reads each box's size and sub-cell offset at its peak. Its decoding is a 3x3
max-pool and a top-k, so it needs no anchors and no NMS op: every step is a builtin TFLite op, the whole
detector (decoding included) runs inside one `.tflite`, and full-integer quantisation has no NMS to break.

Boxes follow TTFNet (see models/centernet_loss.py): each cell predicts its distances to the four sides of
the object it belongs to. The training model maps RGB pixels in [0, 255] (normalisation inside) to the raw
head map (N, S/4, S/4, classes + 4): heat-map logits and the four distances' logarithms (in cells). `detection_model` adds `CenterNetDecode`, giving the rows every dlpipe detect
artifact answers: (N, K, 6) = x1, y1, x2, y2 as fractions of the image, score, class index.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

from dlpipe.errors import ConfigError
from dlpipe.models.segmentation import BN_MOMENTUM, ENCODER_LAYER_NAME, ENCODERS, encoder_features

STRIDE = 4  # the head map's cells are 4x4 input pixels
PRIOR = 0.01  # the heat map starts near this probability everywhere (focal-loss initialisation)


def build_detector(encoder_name: str, num_classes: int, image_size: int, weights: str | None = None,
                   neck_filters: tuple[int, int, int] = (96, 64, 48), head_filters: int = 64) -> tuple[keras.Model, str]:
    """The training model (pixels -> head map) and its encoder's block regex; a pretrained encoder starts frozen.

    The neck upsamples the encoder's stride-32 map to stride 4, adding the encoder's map at each stride
    (a 1x1 lateral, as a feature pyramid does), with one depthwise-separable 3x3 mixing per level: a third
    of a U-Net decoder's cost, for boxes that only need stride 4.
    """
    if num_classes < 1:
        raise ConfigError("classes", "a detector needs at least one class")
    if image_size % 32:
        raise ConfigError("model.image_size", f"must be a multiple of 32. Received: {image_size}")
    spec = ENCODERS.get(encoder_name, key="model.encoder")
    inputs, (_, stride4, stride8, stride16, x) = encoder_features(spec, image_size, weights)
    for level, (skip, filters) in enumerate(zip((stride16, stride8, stride4), neck_filters)):
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"neck{level}_reduce")(x)
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"neck{level}_up")(x)
        lateral = layers.Conv2D(filters, 1, use_bias=False, name=f"neck{level}_lateral")(skip)
        x = layers.Add(name=f"neck{level}_add")([x, lateral])
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"neck{level}_mix")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"neck{level}_bn")(x)
        x = layers.ReLU(name=f"neck{level}_relu")(x)
    outputs = layers.Concatenate(name="head", dtype="float32")([
        _head(x, num_classes, head_filters, "heatmap", bias=-math.log((1 - PRIOR) / PRIOR)),
        _head(x, 4, head_filters, "box", bias=math.log(2.0)),  # every side 2 cells away to start
    ])
    return keras.Model(inputs, outputs, name=f"centernet_{encoder_name}"), spec.block_pattern


def side_distances(raw: keras.KerasTensor) -> keras.KerasTensor:
    """The box head's raw outputs -> distances to the left, top, right and bottom sides, in cells (exp, clipped)."""
    return ops.exp(ops.clip(raw, -6.0, 6.0))


def _head(x: keras.KerasTensor, channels: int, filters: int, name: str, bias: float) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv")(x)
    return layers.Conv2D(channels, 1, bias_initializer=keras.initializers.Constant(bias), dtype="float32",
                         name=f"{name}_out")(x)


VOTE_WINDOW = 3  # a peak's box = the heat-weighted mean of the boxes of the 3x3 cells around it


@keras.saving.register_keras_serializable(package="dlpipe")
class CenterNetDecode(keras.layers.Layer):
    """Head map (N, H, W, classes + 4) -> the K best peaks as (N, K, 6) rows: x1 y1 x2 y2 (fractions), score, class.

    A peak is a heat-map cell that equals the 3x3 max around it (CenterNet's stand-in for NMS); rows past
    the real peaks have scores near 0 and are dropped by the caller's score threshold. With `vote_window` > 1 a
    peak's box is the mean of the boxes its neighbouring cells predict (every cell near an object's centre learns
    its box), weighted by their highest class probability ** 4: box voting, two average pools. On four fold-0
    models it moved mAP by +0.5, +0.6, 0.0 and +1.7 points, AP50 by -0.9 to +0.5 (BENCHMARKS.md,
    bench/detection_voting.py). Saved models without the setting decode as they were trained and exported (the
    peak cell's own box).
    """

    def __init__(self, num_classes: int, max_detections: int = 100, vote_window: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.max_detections, self.vote_window = int(num_classes), int(max_detections), int(vote_window)

    def call(self, head):
        classes = self.num_classes
        heat = ops.sigmoid(head[..., :classes])
        pooled = ops.max_pool(heat, 3, strides=1, padding="same")
        peaks = heat * ops.cast(ops.equal(pooled, heat), heat.dtype)
        height, width = ops.shape(head)[1], ops.shape(head)[2]
        flat = ops.reshape(peaks, (ops.shape(head)[0], -1))
        count = min(self.max_detections, int(head.shape[1] * head.shape[2] * classes)) if head.shape[1] else \
            self.max_detections
        scores, index = ops.top_k(flat, count)
        label = index % classes
        cell = index // classes
        # every cell's box first, then the picked cells' (tf.gather, int32 indices; take_along_axis adds int64
        # casts and a SELECT_V2): an int8 file keeps this float path apart from the quantised network
        boxes = self.cell_boxes(heat, side_distances(head[..., classes:classes + 4]), height, width)
        picked = tf.gather(ops.reshape(boxes, (ops.shape(head)[0], -1, 4)), ops.cast(cell, "int32"), batch_dims=1)
        width_f, height_f = ops.cast(width, "float32"), ops.cast(height, "float32")
        boxes = ops.clip(picked / ops.stack([width_f, height_f, width_f, height_f]), 0.0, 1.0)
        return ops.concatenate([boxes, ops.expand_dims(scores, -1), ops.expand_dims(ops.cast(label, "float32"), -1)],
                               axis=-1)

    def cell_boxes(self, heat, distances, height, width):
        """(N, H, W, 4) x1 y1 x2 y2 in cells: each cell's own box, or its neighbourhood's heat-weighted mean."""
        x = ops.reshape(ops.cast(ops.arange(width), "float32") + 0.5, (1, 1, -1))
        y = ops.reshape(ops.cast(ops.arange(height), "float32") + 0.5, (1, -1, 1))
        boxes = ops.stack([x - distances[..., 0], y - distances[..., 1], x + distances[..., 2],
                           y + distances[..., 3]], axis=-1)
        if self.vote_window <= 1:
            return boxes
        weight = ops.square(ops.square(ops.max(heat, axis=-1, keepdims=True))) + 1e-12  # heat ** 4, never 0
        window = self.vote_window
        return (ops.average_pool(weight * boxes, window, strides=1, padding="same")
                / ops.average_pool(weight, window, strides=1, padding="same"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_detections, 6)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "max_detections": self.max_detections,
                "vote_window": self.vote_window}


@keras.saving.register_keras_serializable(package="dlpipe")
class MediaPipeOutputs(keras.layers.Layer):
    """(N, K, 6) rows -> MediaPipe ObjectDetector's outputs: locations (ymin, xmin, ymax, xmax), classes, scores,
    count (K, as a float [1]); what a detector's .tflite answers."""

    def call(self, rows):
        locations = ops.stack([rows[..., 1], rows[..., 0], rows[..., 3], rows[..., 2]], axis=-1)
        return {"locations": locations, "classes": rows[..., 5], "scores": rows[..., 4],
                "count": ops.cast(ops.shape(rows)[1:2], "float32")}


def detection_model(training_model: keras.Model, num_classes: int, max_detections: int = 100) -> keras.Model:
    """The deployable model: the training model's layers (shared, not copied) followed by the decoding."""
    rows = CenterNetDecode(num_classes, max_detections, VOTE_WINDOW, name="decode")(training_model.output)
    return keras.Model(training_model.input, rows, name=training_model.name.replace("centernet", "detector", 1))


def at_input_size(model: keras.Model, image_size: int) -> keras.Model:
    """The same network and weights taking image_size x image_size photos (the model itself when it already does).

    Every layer of the detector is convolutional or pools per channel, so only the input layers' shapes change: a
    detector trained at one size runs at another (the detect task evaluates and exports at a larger one,
    `model.inference_scale`).
    """
    if tuple(model.input.shape[1:3]) == (image_size, image_size):
        return model

    def resized(node: object) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                batch, _, _, channels = node["config"]["batch_shape"]
                node["config"]["batch_shape"] = [batch, image_size, image_size, channels]
            for value in node.values():
                resized(value)
        elif isinstance(node, list):
            for value in node:
                resized(value)

    config = model.get_config()
    resized(config)
    network = model.__class__.from_config(config)
    network.set_weights(model.get_weights())
    return network


__all__ = ["ENCODER_LAYER_NAME", "STRIDE", "CenterNetDecode", "at_input_size", "build_detector", "detection_model"]
