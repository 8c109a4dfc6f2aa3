"""UnknownGate: the "unknown" answer inside the model graph, so every export applies the same threshold.

Registered with Keras (package "dlpipe") so a `.keras` file holding it reloads;
`dlpipe.models.tasks.image` imports this module before loading one.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlpipe")
class UnknownGate(keras.layers.Layer):
    """[pooled features (N, D), probabilities (N, C)] -> (N, C + 1): the classes' probabilities, then "unknown".

    The score is the cosine similarity of a photo's features to the nearest training class mean (the unit
    means are the layer's weight). At or above `threshold` the output is the probabilities with unknown 0;
    below, every class is 0 and unknown is 1, so the top category (dlpipe, MediaPipe) is "unknown". A hard
    step, not a soft score: the answer flips exactly at the recorded threshold in every runtime.
    """

    def __init__(self, means: int, features: int, threshold: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.count, self.features, self.threshold = int(means), int(features), float(threshold)
        self.means = self.add_weight(shape=(self.features, self.count), initializer="zeros", trainable=False,
                                     name="class_means")

    def similarity(self, features: Any) -> Any:
        """Cosine similarity (N, 1) of each row of features to its nearest class mean."""
        features = ops.cast(features, "float32")
        norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True) + 1e-12)
        return ops.max(ops.matmul(features / norm, self.means), axis=-1, keepdims=True)

    def call(self, inputs: Any) -> Any:
        features, probabilities = inputs
        probabilities = ops.cast(probabilities, "float32")
        known = ops.cast(ops.greater_equal(self.similarity(features), self.threshold), "float32")
        return ops.concatenate([probabilities * known, 1.0 - known], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[1][0], input_shape[1][-1] + 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "means": self.count, "features": self.features,
                "threshold": self.threshold}
