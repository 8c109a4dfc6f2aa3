"""Per-label thresholds folded into a multi-label model, so every label's decision is `score >= 0.5`.

MediaPipe's ImageClassifier metadata holds one global score threshold; a model whose labels need different
thresholds would answer wrongly there. `ThresholdShift` maps each label's score p to sigmoid(logit(p) -
logit(t)): a monotone change of the score that puts each label's threshold t at 0.5, inside the graph, so
every export (SavedModel, TFLite, web) and every runtime decides the same way with one threshold.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

EPSILON = 1e-6  # scores are clipped to [EPSILON, 1 - EPSILON] before the logit: float32 saturates beyond that


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
        self._shift = np.log(values / (1 - values)).astype(np.float32)

    def call(self, scores: Any) -> Any:
        ops = keras.ops
        clipped = ops.clip(scores, EPSILON, 1 - EPSILON)
        return ops.sigmoid(ops.log(clipped / (1 - clipped)) - self._shift)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.thresholds}


def fold_thresholds(model: keras.Model, thresholds: Sequence[float]) -> keras.Model:
    """`model` with a ThresholdShift on its output: the same decisions at 0.5 as `model` at `thresholds`."""
    inputs = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    outputs = ThresholdShift(thresholds, name="thresholds")(model(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_thresholded")


def shifted_scores(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """What ThresholdShift computes, in NumPy (for checks and for scores computed outside the graph)."""
    clipped = np.clip(np.asarray(scores, np.float64), EPSILON, 1 - EPSILON)
    t = np.asarray(thresholds, np.float64)
    return 1 / (1 + np.exp(-(np.log(clipped / (1 - clipped)) - np.log(t / (1 - t)))))
