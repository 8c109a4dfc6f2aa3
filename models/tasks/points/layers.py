"""The points task's network: the Playground's input features computed inside the model, then dense layers.

The model takes raw points (float32 [N, 2]: x, y), so every artifact takes what a user has; `PointFeatures`
turns them into the chosen features (x, y, x2, y2, xy, sinx, siny) in the order given, as the Playground page
(pipelines/playground/playground.js) does before its first layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

FEATURE_NAMES = ("x", "y", "x2", "y2", "xy", "sinx", "siny")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def _feature(name: str, x: Any, y: Any) -> Any:
    ops = keras.ops
    return {"x": lambda: x, "y": lambda: y, "x2": lambda: x * x, "y2": lambda: y * y, "xy": lambda: x * y,
            "sinx": lambda: ops.sin(x), "siny": lambda: ops.sin(y)}[name]()


@keras.saving.register_keras_serializable(package="dlpipe")
class PointFeatures(keras.layers.Layer):
    """[N, 2] points -> [N, len(features)] features."""

    def __init__(self, features: Sequence[str] = ("x", "y"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = [name for name in features if name not in FEATURE_NAMES]
        if unknown or not features:
            raise ValueError(f"features must be among {', '.join(FEATURE_NAMES)}. Received: {list(features)}")
        self.features = list(features)

    def call(self, points: Any) -> Any:
        x, y = points[:, 0:1], points[:, 1:2]
        return keras.ops.concatenate([_feature(name, x, y) for name in self.features], axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], len(self.features))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "features": self.features}


def make_points_mlp(features: Sequence[str], layers: Sequence[int], activation: str, l1: float, l2: float,
                    classes: int, seed: int) -> keras.Model:
    """Points -> features -> dense layers (Glorot-uniform kernels, L1/L2 on kernels) -> softmax over `classes`."""
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    points = keras.Input((2,), name="points", dtype="float32")
    hidden = PointFeatures(features, name="features")(points)
    for index, units in enumerate(layers):
        hidden = keras.layers.Dense(units, activation=activation, kernel_regularizer=regularizer,
                                    kernel_initializer=keras.initializers.GlorotUniform(seed + index),
                                    name=f"hidden_{index + 1}")(hidden)
    output = keras.layers.Dense(classes, activation="softmax", kernel_regularizer=regularizer,
                                kernel_initializer=keras.initializers.GlorotUniform(seed + len(layers)),
                                name="probabilities")(hidden)
    return keras.Model(points, output, name="points_mlp")
