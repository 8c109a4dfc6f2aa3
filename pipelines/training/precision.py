"""Mixed precision for training (`train.precision`), and a float32 model again for everything after it.

Keras fixes a layer's compute dtype when the layer is built, so the global
policy must be set before the model stage builds the model; it is restored as
soon as training ends, so later stages (and other runs in the same process,
such as tests) build their layers in float32. The trained model is then switched
to float32 in place: mixed precision keeps its variables in float32, so nothing
is lost, and evaluation and every export (Keras, SavedModel, TFLite) take and
return float32 as a float32 run's would. Loss scaling for `mixed_float16` is
Keras 3's own: `compile` wraps the optimizer in a LossScaleOptimizer.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def precision_of(config: Any) -> str:
    """The run's `train.precision` (float32 for a pipeline without the option, such as the GAN's)."""
    train = config.sections.get("train") if "train" in config.stages else None
    return getattr(train, "precision", "float32")


@contextmanager
def global_dtype_policy(name: str) -> Iterator[None]:
    """Build layers under the policy `name` inside the block; the previous global policy comes back after it."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def to_float32(model: Any) -> Any:
    """Switch every layer of a mixed-precision model to float32 compute, in place (its variables already are).

    A layer's saved config carries its policy, so a model saved afterwards loads
    as float32 too. The compiled functions are dropped: they were traced in the
    old dtypes. A float32 model is returned untouched.
    """
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    if all(layer.dtype_policy.name == "float32" for layer in layers):
        return model
    for layer in layers:
        layer.dtype_policy = "float32"
    model.train_function = model.test_function = model.predict_function = None
    return model
