"""The GAN's adversarial fit, resumable per epoch with the shared training core's checkpoints and history.

The DCGAN trains through `fit()` (its own `train_step`), so it keeps what every task's phase uses:
the run's one CHECKPOINT_DIR, a CSVLogger history read back by `read_history`, and Keras'
BackupAndRestore. It adds only what its adversarial draws need: the random-seed states (latent
draws, dropout masks) backed up beside the weights, so a resumed epoch repeats none of the first's.
Imported by the GAN's train stage when it runs (it imports Keras).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import keras
import numpy as np

from dlpipe.errors import DlpipeError
from dlpipe.pipelines.training.keras_fit import read_history
from dlpipe.pipelines.training.phases import CHECKPOINT_DIR

PHASE = "gan"  # names the history file and the backup, as a task's phase names its own


def history_path(out_dir: str | Path) -> Path:
    """Where a GAN run's per-epoch history (losses, Fréchet distance) is logged."""
    return Path(out_dir) / f"history_{PHASE}.csv"


def train_gan(gan: Any, dataset: Any, epochs: int, out_dir: str | Path, callbacks: Iterable[Any] = (),
              verbose: int = 0) -> dict[str, list[float]]:
    """Train to `epochs` in total, resuming from `out_dir`'s checkpoints if an earlier call got part of the way.

    Every epoch backs up both networks, both optimizers and the latent seed state (kept after
    training, so a later call with a larger `epochs` trains further) and appends the losses and the
    callbacks' logs (e.g. 'fid') to the history. Returns the whole history read back from it.
    """
    if epochs < 1:
        raise DlpipeError(f"train_gan: epochs must be at least 1. Received: epochs={epochs}")
    if not hasattr(gan, "d_optimizer"):
        gan.compile()
    backup = Path(out_dir) / CHECKPOINT_DIR / f"backup_{PHASE}"
    backup.parent.mkdir(parents=True, exist_ok=True)
    history_file = history_path(out_dir)
    # the caller's callbacks first (their logs, e.g. 'fid', reach the CSV); logged before the backup, so a kill
    # in between repeats the epoch (the later row wins) rather than losing it
    steps = [*callbacks, keras.callbacks.CSVLogger(str(history_file), append=True), SeedStates(backup),
             keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False)]
    gan.fit(dataset, epochs=epochs, callbacks=steps, verbose=verbose, shuffle=False)  # the dataset shuffles itself
    return read_history(history_file)


class SeedStates(keras.callbacks.Callback):
    """Back up the random-seed states (latent draws, dropout masks), which Keras weight files leave out.

    Without them a resumed epoch would repeat the random draws of the first epoch. Saved per epoch
    with its number beside BackupAndRestore's files, restored only when it matches the epoch the
    weights backup holds.
    """

    def __init__(self, backup: Path):
        super().__init__()
        self.path = backup.parent / f"{backup.name}_seed_states.npz"
        self.metadata = backup / "training_metadata.json"

    def _states(self) -> list:
        return [v for v in self.model.variables if v.path.endswith("seed_generator_state")]

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not (self.path.is_file() and self.metadata.is_file()):
            return
        with np.load(self.path) as saved:
            if int(saved["epoch"]) != json.loads(self.metadata.read_text())["epoch"]:
                return
            for index, variable in enumerate(self._states()):
                variable.assign(saved[f"state{index}"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from dlpipe import atomic

        states = {f"state{i}": np.asarray(v.numpy()) for i, v in enumerate(self._states())}
        with atomic.replacing_file(self.path) as tmp:
            np.savez(tmp, epoch=epoch + 1, **states)
