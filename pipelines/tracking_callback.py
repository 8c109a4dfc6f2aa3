"""The Keras callback of run tracking: each epoch's logs to MLflow, numbered across a run's phases.

Imported only when a run is tracked (it imports Keras). The train stage tells it where each phase starts
(`start_phase`), so a head phase of 3 epochs and a fine-tuning phase of 2 log steps 0-4, a resumed phase
continues at its own epoch, and a refit's epochs log as `refit_<metric>` after them.
"""

from __future__ import annotations

from typing import Any

import keras


class EpochLogger(keras.callbacks.Callback):
    """Logs `logs` at the end of every epoch through a `dlpipe.pipelines.tracking.Tracker`."""

    def __init__(self, tracker: Any):
        super().__init__()
        self.tracker = tracker
        self.offset = 0
        self.prefix = ""

    def start_phase(self, phase: Any, epochs_before: int) -> None:
        """The phase about to fit and how many epochs the run's earlier phases trained."""
        self.offset = epochs_before
        self.prefix = "refit_" if getattr(phase, "refit", False) else ""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {f"{self.prefix}{key}": float(value) for key, value in (logs or {}).items()
                  if isinstance(value, (int, float)) or hasattr(value, "__float__")}
        self.tracker.log_metrics(values, step=self.offset + epoch)
