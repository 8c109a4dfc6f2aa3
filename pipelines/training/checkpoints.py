"""Reading a run's checkpoints back, with an error that names the file when one is damaged.

A run killed while the disk filled up, or a checkpoint copied half-way, left a file h5py cannot
open; `--resume` then stopped with h5py's own words and no hint of which file or what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlpipe.errors import RunStateError

CHECKPOINT_FOLDERS = ("checkpoints", "folds/*/checkpoints")  # a run's own, and each cross-validation fold's
BACKUP_SUFFIX = ".bkp"  # Keras' name for the previous backup, kept with double_checkpoint
READ_ERRORS = (OSError, ValueError, KeyError, TypeError)


def previous_backup(path: Path) -> Path:
    """The copy of a backup file that Keras' double_checkpoint keeps from the save before (`latest.weights.h5.bkp`)."""
    return Path(f"{path}{BACKUP_SUFFIX}")


def damaged(path: Path, error: BaseException) -> RunStateError:
    """The one-line error for a checkpoint (file or backup folder) that cannot be read back."""
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return RunStateError(f"{path}: checkpoint is damaged and cannot be read ({detail}); delete it to train that "
                         "part again with --resume, or start the run afresh with --overwrite")


def load_checkpoint(model: Any, path: Path) -> None:
    """`model.load_weights(path)`, or a RunStateError naming the file when it is truncated or not this model's."""
    try:
        model.load_weights(path)
    except READ_ERRORS as error:
        raise damaged(path, error) from None


def backup_callback(folder: Path) -> Any:
    """Keras' BackupAndRestore on `folder`, keeping the previous backup too (`.bkp`): a process killed while it wrote
    the latest one (a killed tune worker did) resumes from the one before; only when both are damaged does the
    restore at the start of a resumed phase stop, naming the folder."""
    import shutil

    import keras

    class CheckedBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs: Any = None) -> None:
            try:
                super().on_train_begin(logs)
            except READ_ERRORS as error:  # json.JSONDecodeError is a ValueError
                previous = [previous_backup(path) for path in (self._weights_path, self._training_metadata_path)]
                if not all(path.is_file() for path in previous):
                    raise damaged(folder, error) from None
                for path in previous:  # the backup before the damaged one: at most an epoch is trained again
                    shutil.copy2(path, path.with_suffix(""))
                try:
                    super().on_train_begin(logs)
                except READ_ERRORS as again:
                    raise damaged(folder, again) from None

    return CheckedBackupAndRestore(str(folder), double_checkpoint=True)


def check_checkpoints(out_dir: Path) -> None:
    """Before a resumed run imports TensorFlow: every weights file of the run opens as HDF5 and every backup's
    training_metadata.json parses, or a RunStateError names the first damaged one (in a fraction of a second,
    not after TensorFlow's start-up and the data's loading)."""
    import json

    import h5py

    for pattern in CHECKPOINT_FOLDERS:
        for folder in sorted(out_dir.glob(pattern)):
            for path in sorted(folder.rglob("*.weights.h5")):
                if previous_backup(path).is_file():
                    continue  # a backup with its previous copy: the restore falls back to it if need be
                try:
                    h5py.File(path, "r").close()
                except OSError as error:
                    raise damaged(path, error) from None
            for path in sorted(folder.rglob("training_metadata.json")):
                if previous_backup(path).is_file():
                    continue
                try:
                    json.loads(path.read_text(encoding="utf-8"))["epoch"]
                except READ_ERRORS as error:
                    raise damaged(path.parent, error) from None
