"""Per-label thresholds folded into a multi-label model, so every label's decision is `score >= 0.5`.

MediaPipe's ImageClassifier metadata holds one global score threshold; a model whose labels need different
thresholds would answer wrongly there. `fold_thresholds` maps each label's score p to sigmoid(logit(p) -
logit(t)): a monotone change of the score that puts each label's threshold t at 0.5, inside the graph, so
every export (SavedModel, TFLite, web) and every runtime decides the same way with one threshold. On the
usual head (a sigmoid Dense layer) that is its bias minus logit(t): no new operation, exact, and safe in a
full-integer .tflite; on the lse head (`model.pooling=lse`) and the heat-map head (`heatmap_head`) it is the
per-location convolution's bias, as log-sum-exp and maximum pooling commute with a constant shift. Any other model
gets a `ThresholdShift` layer on its output.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="dlpipe")
class ThresholdShift(keras.layers.Layer):
    """Shift per-label sigmoid scores so that each label's threshold lands on 0.5.

    Args:
        thresholds: one threshold per label, each in (0, 1).

    Call arguments:
        scores: (batch, labels) sigmoid scores.
    """

    def __init__(self, thresholds: Sequence[float], **kwargs: Any):
        super().__init__(**kwargs)
        values = np.asarray(thresholds, np.float64)
        if values.ndim != 1 or np.any(values <= 0) or np.any(values >= 1):
            raise ValueError(f"thresholds must be one value per label in (0, 1). Received: thresholds={list(values)}")
        self.thresholds = [float(v) for v in values]
        self._odds = (values / (1 - values)).astype(np.float32)

    def call(self, scores: Any) -> Any:
        # sigmoid(logit(p) - logit(t)) = p / (p + k (1 - p)) with k = t / (1 - t): no logarithm, and a divisor
        # between min(1, k) and max(1, k), never 0 (a logit's 1 - p quantises to 0 in a full-integer .tflite)
        ops = keras.ops
        odds = ops.convert_to_tensor(self._odds)
        return scores / (odds + (1 - odds) * scores)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.thresholds}


def fold_thresholds(model: keras.Model, thresholds: Sequence[float]) -> keras.Model:
    """`model` deciding at 0.5 as it did at `thresholds` (one per label); `model` itself is left unchanged.

    A model ending in a sigmoid Dense layer (or the lse head's per-location convolution) gets a copy of that
    layer with its bias lowered by logit(t) (the rest of the graph is shared); any other model gets a
    ThresholdShift on its output.
    """
    values = np.asarray(thresholds, np.float64)
    ThresholdShift(values)  # the same checks either way: one value per label, each in (0, 1)
    if model.output_shape[-1] != len(values):
        raise ValueError(f"one threshold per label: the model has {model.output_shape[-1]} outputs. "
                         f"Received: thresholds={list(values)}")
    folded = _fold_into_location_logits(model, values)
    if folded is not None:
        return folded
    head = model.layers[-1]
    if isinstance(head, keras.layers.Dense) and head.activation is keras.activations.sigmoid and head.use_bias:
        try:
            features = head.input
        except (AttributeError, ValueError):  # a layer called more than once, or never in a graph
            features = None
        if features is not None:
            folded = keras.layers.Dense.from_config(head.get_config())
            outputs = folded(features)
            kernel, bias = head.get_weights()
            folded.set_weights([kernel, (bias - np.log(values / (1 - values))).astype(bias.dtype)])
            return keras.Model(model.inputs, outputs, name=f"{model.name}_thresholded")
    inputs = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    outputs = ThresholdShift(values, name="thresholds")(model(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_thresholded")


def _fold_into_location_logits(model: keras.Model, values: np.ndarray) -> keras.Model | None:
    """The lse or heat-map head (1x1 convolution, log-sum-exp or maximum pooling, sigmoid) with the convolution's
    bias lowered by logit(t): both poolings commute with a constant shift, so this is exact. None for other heads."""
    from dlpipe.models.classifier import LOCATION_LOGITS_LAYER_NAME, LSE_POOL_LAYER_NAME
    from dlpipe.models.layers import LogSumExpPooling
    from dlpipe.models.probe import HEAD_LAYER
    from dlpipe.models.tasks.multilabel.heatmap_head import HEAT_LOGITS_LAYER, PEAK_LAYER

    names = [layer.name for layer in model.layers]
    if names[-3:] not in ([LOCATION_LOGITS_LAYER_NAME, LSE_POOL_LAYER_NAME, HEAD_LAYER],
                          [HEAT_LOGITS_LAYER, PEAK_LAYER, HEAD_LAYER]):
        return None
    conv, pool, head = model.layers[-3:]
    pooled = isinstance(pool, (LogSumExpPooling, keras.layers.GlobalMaxPooling2D))
    if not (pooled and head.activation is keras.activations.sigmoid and conv.use_bias):
        return None
    folded = keras.layers.Conv2D.from_config(conv.get_config())
    outputs = head(pool(folded(conv.input)))
    kernel, bias = conv.get_weights()
    folded.set_weights([kernel, (bias - np.log(values / (1 - values))).astype(bias.dtype)])
    return keras.Model(model.inputs, outputs, name=f"{model.name}_thresholded")


def shifted_scores(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """What ThresholdShift computes, in NumPy (for checks and for scores computed outside the graph)."""
    p, t = np.asarray(scores, np.float64), np.asarray(thresholds, np.float64)
    odds = t / (1 - t)
    return p / (odds + (1 - odds) * p)
