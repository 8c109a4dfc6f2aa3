"""Weight averaging for a phase: validate and checkpoint the exponential moving average of the weights.

The optimizer keeps the average (Keras' `use_ema`); these callbacks put it in the model while Keras validates and
while the best checkpoint is written, and take it out again before the epoch's backup, so a resumed run continues
from the raw weights with the average where the optimizer expects it. At the end of a phase Keras itself moves
the average into the model (`finalize_variable_values`), and a phase that selects an epoch restores that epoch's
average from the best checkpoint.
"""

from __future__ import annotations

from typing import Any

import keras


class EMASwap:
    """Which weights the model holds (raw or averaged), and the callbacks that swap them in and out."""

    def __init__(self) -> None:
        self.averaged_in_model = False
        self.model: Any = None

    def callbacks(self) -> tuple[keras.callbacks.Callback, keras.callbacks.Callback]:
        """(before the checkpoint: validation and the epoch's end see the average; before the backup: raw again)."""
        return _AverageIn(self), _RawBack(self)

    def swap(self, averaged: bool) -> None:
        if self.averaged_in_model == averaged:
            return
        optimizer = self.model.optimizer
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            raw = keras.ops.convert_to_numpy(variable)
            variable.assign(average)
            average.assign(raw)
        self.averaged_in_model = averaged


class _AverageIn(keras.callbacks.Callback):
    def __init__(self, state: EMASwap) -> None:
        super().__init__()
        self.state = state

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.state.model = model

    def on_test_begin(self, logs: Any = None) -> None:
        self.state.swap(True)

    def on_test_end(self, logs: Any = None) -> None:
        self.state.swap(False)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.state.swap(True)


class _RawBack(keras.callbacks.Callback):
    def __init__(self, state: EMASwap) -> None:
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.state.swap(False)
