"""Keras models built before training, so TensorFlow traces their train step once.

Keras 3 without a distribution strategy builds the optimizer's slots and the loss and metric totals lazily, inside
the first trace of the train step (`fit`, `train_on_batch`); TensorFlow then traces the step again without them.
Building them first saves that second trace (bench/first_step.py: 10 s a phase for the image default).
"""

from __future__ import annotations

from typing import Any

import keras


def build_before_fit(model: keras.Model, data: Any) -> None:
    """Create the optimizer's and the metrics' variables before the first train step is traced.

    `data`: the tf.data dataset `fit` gets (its element_spec is used, no batch is read), or an (x, y) batch or arrays.
    Under a distribution strategy Keras builds them first itself. Keras' own builder, from the shapes and dtypes.
    """
    if getattr(model, "_distribute_strategy", None) is not None or not hasattr(model, "_symbolic_build"):
        return
    model._symbolic_build(data_batch=getattr(data, "element_spec", data))
