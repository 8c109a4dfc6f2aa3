"""Reading a run's checkpoints back, with an error that names the file when one is damaged.

A run killed while the disk filled up, or a checkpoint copied half-way, left a file h5py cannot
open; `--resume` then stopped with h5py's own words and no hint of which file or what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlpipe.errors import RunStateError

CHECKPOINT_FOLDERS = ("checkpoints", "folds/*/checkpoints")  # a run's own, and each cross-validation fold's


def damaged(path: Path, error: BaseException) -> RunStateError:
    """The one-line error for a checkpoint (file or backup folder) that cannot be read back."""
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return RunStateError(f"{path}: checkpoint is damaged and cannot be read ({detail}); delete it to train that "
                         "part again with --resume, or start the run afresh with --overwrite")


def load_checkpoint(model: Any, path: Path) -> None:
    """`model.load_weights(path)`, or a RunStateError naming the file when it is truncated or not this model's."""
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise damaged(path, error) from None


def backup_callback(folder: Path) -> Any:
    """Keras' BackupAndRestore on `folder`, whose restore at the start of a resumed phase names a damaged backup."""
    import keras

    class CheckedBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs: Any = None) -> None:
            try:
                super().on_train_begin(logs)
            except (OSError, ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
                raise damaged(folder, error) from None

    return CheckedBackupAndRestore(str(folder))


def check_checkpoints(out_dir: Path) -> None:
    """Before a resumed run imports TensorFlow: every weights file of the run opens as HDF5 and every backup's
    training_metadata.json parses, or a RunStateError names the first damaged one (in a fraction of a second,
    not after TensorFlow's start-up and the data's loading)."""
    import json

    import h5py

    for pattern in CHECKPOINT_FOLDERS:
        for folder in sorted(out_dir.glob(pattern)):
            for path in sorted(folder.rglob("*.weights.h5")):
                try:
                    h5py.File(path, "r").close()
                except OSError as error:
                    raise damaged(path, error) from None
            for path in sorted(folder.rglob("training_metadata.json")):
                try:
                    json.loads(path.read_text(encoding="utf-8"))["epoch"]
                except (OSError, ValueError, KeyError, TypeError) as error:
                    raise damaged(path.parent, error) from None
