"""A run killed mid-training continues from its last finished epoch with --resume."""

from __future__ import annotations

import csv
import json

import keras
import pytest

from conftest import TINY_SETS
from dlpipe.errors import RunStateError
from dlpipe.pipelines import api

EPOCHS = 8


class InterruptAfter(keras.callbacks.Callback):
    """Stands in for a kill: raises KeyboardInterrupt at the end of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_killed_run_resumes_from_its_last_checkpoint(color_folder, tmp_path):
    out = tmp_path / "run"
    sets = [*TINY_SETS, f"train.epochs={EPOCHS}", "train.early_stopping_patience=0"]
    with pytest.raises(KeyboardInterrupt):
        api.run("image-classify", data=str(color_folder), out=out, sets=sets, callbacks=[InterruptAfter(2)], echo=lambda _: None)
    assert (out / "checkpoints" / "backup_train").is_dir()
    assert not (out / "metrics.json").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["train"]["status"] == "failed"

    with pytest.raises(RunStateError, match="drop --config, --set and --data"):
        api.run("image-classify", out=out, sets=["train.epochs=2"], resume=True)

    recorder = EpochRecorder()
    result = api.run("image-classify", out=out, resume=True, callbacks=[recorder], echo=lambda _: None)
    # epochs 0 and 1 were backed up before the interruption at the end of epoch 2, which is repeated
    assert recorder.epochs == list(range(2, EPOCHS))
    with open(out / "history_train.csv", newline="") as handle:
        logged = sorted({int(row["epoch"]) for row in csv.DictReader(handle)})
    assert logged == list(range(EPOCHS))
    assert result.metrics["accuracy"] > 0.5
    assert (out / "model.keras").is_file()
    assert not (out / "checkpoints" / "backup_train").exists()  # Keras removes the backup once a phase completes


def test_resume_needs_an_existing_run(tmp_path):
    with pytest.raises(RunStateError, match="no run to resume"):
        api.run("image-classify", out=tmp_path / "nothing", resume=True)


def test_resume_after_training_finished_skips_training(color_folder, tmp_path):
    out = tmp_path / "run"
    sets = [*TINY_SETS, "train.epochs=2", "export.formats=[keras]"]
    api.run("image-classify", data=str(color_folder), out=out, sets=sets, echo=lambda _: None)
    recorder = EpochRecorder()
    lines: list[str] = []
    api.run("image-classify", out=out, resume=True, callbacks=[recorder], echo=lines.append)
    assert recorder.epochs == []
    assert any("finished earlier" in line for line in lines)
