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
from dlpipe.models.layers import ImagePreprocess

BACKBONE_LAYER_NAME = "backbone"


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
) -> keras.Model:
    """Build the full classifier; a pretrained backbone starts frozen.

    `activation`: softmax (one class per image) or sigmoid (any set of labels per image: multi-label).

    A pretrained backbone is called with `training=False`, so its batch-norm
    layers stay in inference mode even after it is unfrozen for fine-tuning
    (the Keras transfer-learning recipe): updating their statistics on a small
    dataset would wreck the pretrained features.
    """
    if num_classes < (2 if activation == "softmax" else 1):
        raise ConfigError("classes", f"need at least {2 if activation == 'softmax' else 1} classes. Received: {num_classes}")
    resolved = resolve_weights(spec, weights)
    backbone = spec.build_with((image_size, image_size, 3), resolved, scratch)
    backbone.name = BACKBONE_LAYER_NAME  # a fixed name so fine-tuning and export can find it
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = ImagePreprocess(normalization or spec.normalization, name="normalize")(inputs)
    if resolved is not None:
        backbone.trainable = False
        x = backbone(x, training=False)
    else:
        x = backbone(x)
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", kernel_regularizer=regularizer, name="head_hidden")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation=activation, kernel_regularizer=regularizer,
                           dtype="float32", name="probabilities")(x)  # float32 under mixed precision too
    return keras.Model(inputs, outputs, name=re.sub(r"\W+", "_", spec.name).strip("_")[-40:] + "_classifier")
