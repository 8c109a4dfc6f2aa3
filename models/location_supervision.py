"""Box supervision of a spatial head: the lse head's per-location logits learn where each label's boxes are.

Labels alone tell a head *that* a small thing is in the photo; boxes tell it *where*, at every location of its
feature map. This is a second loss, added only while training: the model that is fitted wraps the task's model
(same layers, same weights) with an extra input, the covered fraction of each cell per label
(`dlpipe.data.location_targets`), and a layer that adds the per-location binary cross-entropy to the loss and
passes the scores through. The exported model is the task's own, one input, no trace of the wrapper.
"""

from __future__ import annotations

import keras
from keras import ops

from dlpipe.models.classifier import LOCATION_LOGITS_LAYER_NAME

SUPERVISION_LAYER_NAME = "location_supervision"


class LocationSupervision(keras.layers.Layer):
    """Adds `weight` x the mean binary cross-entropy of per-location logits against their targets; returns the
    model's scores unchanged."""

    def __init__(self, weight: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, inputs: list) -> keras.KerasTensor:
        logits, targets, scores = inputs
        loss = keras.losses.binary_crossentropy(targets, ops.cast(logits, "float32"), from_logits=True)
        self.add_loss(self.weight * ops.mean(loss))
        return scores

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}


def has_location_logits(model: keras.Model) -> bool:
    """Whether the model scores each label at every location (the lse head)."""
    return any(layer.name == LOCATION_LOGITS_LAYER_NAME for layer in model.layers)


def location_grid(model: keras.Model) -> int:
    """The side of the lse head's per-location logits (28 for EfficientNet-Lite0's stride-16 map at 448 px)."""
    return int(model.get_layer(LOCATION_LOGITS_LAYER_NAME).output.shape[1])


def supervised_model(model: keras.Model, weight: float) -> keras.Model:
    """The model to fit: inputs (photo, per-location targets), output the model's scores, sharing its weights (a
    weights file of either loads into the other)."""
    logits = model.get_layer(LOCATION_LOGITS_LAYER_NAME).output
    targets = keras.Input(shape=tuple(logits.shape[1:]), name="location_targets")
    scores = LocationSupervision(weight, name=SUPERVISION_LAYER_NAME)([logits, targets, model.output])
    return keras.Model([model.input, targets], scores, name=model.name)
