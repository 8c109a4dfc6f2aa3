"""Image classifier = normalisation layer + backbone + classification head.

The model takes raw RGB pixels in [0, 255] (float32, fixed size) and returns
class probabilities, so training, export and inference feed it the same thing.
"""

from __future__ import annotations

import re

import keras
from keras import layers

from dlpipe.errors import ConfigError
from dlpipe.models.backbones import BackboneSpec, ScratchOptions, resolve_weights
from dlpipe.models.layers import ImagePreprocess, LogSumExpPooling
from dlpipe.models.probe import HEAD_LAYER

BACKBONE_LAYER_NAME = "backbone"
LOCATION_LOGITS_LAYER_NAME = "location_logits"  # the lse head's 1x1 convolution: per-location class logits
LSE_POOL_LAYER_NAME = "lse_pool"  # the lse head's pooling layer: a model has one exactly when it pools so


def build_classifier(
    spec: BackboneSpec,
    num_classes: int,
    image_size: int,
    weights: str | None,
    normalization: str | None = None,
    dropout: float = 0.2,
    hidden_units: int = 0,
    l1: float = 0.0,
    l2: float = 0.0,
    scratch: ScratchOptions | None = None,
    activation: str = "softmax",
    pooling: str = "avg",
    sharpness: float = 5.0,
    finer_map: bool = False,
) -> keras.Model:
    """Build the full classifier; a pretrained backbone starts frozen.

    `activation`: softmax (one class per image) or sigmoid (any set of labels per image: multi-label).
    `pooling`: avg (the backbone's pooled features, then a Dense layer) or lse (a 1x1 convolution scores every
    location of the backbone's last feature map, pooled per class by log-sum-exp of sharpness r: small things
    in a scene are not averaged away); `finer_map` takes the last map at twice that side (stride 16), batch-normalised.

    A pretrained backbone is called with `training=False`, so its batch-norm
    layers stay in inference mode even after it is unfrozen for fine-tuning
    (the Keras transfer-learning recipe): updating their statistics on a small
    dataset would wreck the pretrained features.
    """
    if num_classes < (2 if activation == "softmax" else 1):
        raise ConfigError("classes", f"need at least {2 if activation == 'softmax' else 1} classes. Received: {num_classes}")
    resolved = resolve_weights(spec, weights)
    backbone = spec.build_with((image_size, image_size, 3), resolved, scratch)
    if pooling == "lse":
        backbone = feature_map(backbone, finer_map)
    backbone.name = BACKBONE_LAYER_NAME  # a fixed name so fine-tuning and export can find it
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = ImagePreprocess(normalization or spec.normalization, name="normalize")(inputs)
    if resolved is not None:
        backbone.trainable = False
        x = backbone(x, training=False)
    else:
        x = backbone(x)
    if pooling == "lse":
        return _spatial_head(x, inputs, spec, num_classes, dropout, hidden_units, regularizer, activation, sharpness,
                             finer_map)
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", kernel_regularizer=regularizer, name="head_hidden")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation=activation, kernel_regularizer=regularizer,
                           dtype="float32", name=HEAD_LAYER)(x)  # float32 under mixed precision too
    return keras.Model(inputs, outputs, name=_model_name(spec))


def _model_name(spec: BackboneSpec) -> str:
    # cut to the last 40 characters first, then strip: a Keras name must start with a letter or digit (a cut
    # through "tfhub:/tmp/pytest-11/..." once left "_pytest_11_...")
    return (re.sub(r"\W+", "_", spec.name)[-40:].strip("_") or "model") + "_classifier"


def feature_map(backbone: keras.Model, finer: bool = False) -> keras.Model:
    """The backbone without its final global pooling layer: its last feature map, or with `finer` the last map of
    twice that side (stride 16 instead of 32), dropping the layers after it (same layers and weights)."""
    last = backbone.layers[-1]
    if not isinstance(last, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
        raise ConfigError("model.pooling", f"lse needs a backbone ending in global pooling; {backbone.name} ends in "
                                           f"{type(last).__name__}: use model.pooling=avg")
    output = last.input
    if finer:
        side = output.shape[1]
        maps = [layer.output for layer in backbone.layers[1:-1]
                if len(layer.output.shape) == 4 and side and layer.output.shape[1] == 2 * side]
        if not maps:
            raise ConfigError("model.lse_map", f"{backbone.name} has no feature map of side {2 * side}; use "
                                               "model.lse_map=last")
        output = maps[-1]
    return keras.Model(backbone.inputs, output, name=backbone.name)


def _spatial_head(x, inputs, spec: BackboneSpec, num_classes: int, dropout: float, hidden_units: int,
                  regularizer, activation: str, sharpness: float, finer: bool) -> keras.Model:
    """Per-location class logits (1x1 convolution) pooled by log-sum-exp, then the activation. A finer map (a
    block's inner activations, unnormalised) is batch-normalised first."""
    if hidden_units:
        raise ConfigError("model.hidden_units", "the lse head is one 1x1 convolution; set model.hidden_units=0")
    if finer:
        x = layers.BatchNormalization(name="head_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # a small kernel starts every location's logit near 0, so the pooled score starts near 0.5: the default
    # initialisation sent log-sum-exp (near the maximum of 784 locations) to confident "on" for every label
    x = layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                      kernel_regularizer=regularizer, dtype="float32", name=LOCATION_LOGITS_LAYER_NAME)(x)
    x = LogSumExpPooling(sharpness, dtype="float32", name=LSE_POOL_LAYER_NAME)(x)
    outputs = layers.Activation(activation, dtype="float32", name=HEAD_LAYER)(x)
    return keras.Model(inputs, outputs, name=_model_name(spec))
