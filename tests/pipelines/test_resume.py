"""A run killed mid-training continues from its last finished epoch with --resume."""

from __future__ import annotations

import csv
import json

import keras
import pytest

from conftest import TINY_SETS, InterruptAfter
from dlpipe.errors import RunStateError
from dlpipe.pipelines import api

EPOCHS = 6
# random augmentation draws differ from run to run (a parallel map over a stateful generator); without it, two runs
# with one seed log identical histories, so a killed-and-resumed run can be held to an unbroken run's numbers
RESUME_SETS = [*TINY_SETS, f"train.epochs={EPOCHS}", "train.early_stopping_patience=0", "augment.enabled=false",
               "export.formats=[keras]"]
ACCURACY_TOLERANCE = 0.05  # at most 1 of the 10 held-out test images more wrong than the unbroken run


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_killed_run_resumes_from_its_last_checkpoint(color_folder, tmp_path):
    unbroken = api.run("image-classify", data=str(color_folder), out=tmp_path / "unbroken", sets=RESUME_SETS,
                       echo=lambda _: None)
    reference = _history(tmp_path / "unbroken")
    assert len(reference) == EPOCHS

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        api.run("image-classify", data=str(color_folder), out=out, sets=RESUME_SETS, callbacks=[InterruptAfter(2)],
                echo=lambda _: None)
    assert (out / "checkpoints" / "backup_train").is_dir()
    assert not (out / "metrics.json").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["train"]["status"] == "failed"
    # same seed, same config: up to the kill, the run logged exactly the unbroken run's epochs
    assert _history(out) == reference[:3]

    with pytest.raises(RunStateError, match="drop --config, --set and --data"):
        api.run("image-classify", out=out, sets=["train.epochs=2"], resume=True)

    recorder = EpochRecorder()
    result = api.run("image-classify", out=out, resume=True, callbacks=[recorder], echo=lambda _: None)
    # epochs 0 and 1 were backed up before the interruption at the end of epoch 2, which is repeated
    assert recorder.epochs == list(range(2, EPOCHS))
    rows = _history(out)  # epochs 0, 1, 2 (interrupted), then 2 again, 3, ...
    assert sorted({int(row["epoch"]) for row in rows}) == list(range(EPOCHS))
    # the resumed epoch 2 starts from the backed-up weights, not from scratch: its loss is below epoch 0's
    losses = [float(row["loss"]) for row in rows]
    assert losses[3] < losses[0] and losses[-1] < losses[0]
    # the interruption costs nothing: the resumed model scores what the unbroken one does on the held-out test set
    # (not bit for bit: the resumed run's data order restarts, so later epochs see other batches)
    assert unbroken.metrics["accuracy"] >= 0.9
    assert result.metrics["accuracy"] >= unbroken.metrics["accuracy"] - ACCURACY_TOLERANCE
    assert float(rows[-1]["val_loss"]) <= max(2 * float(reference[-1]["val_loss"]), 0.05)
    assert (out / "model.keras").is_file()
    assert not (out / "checkpoints" / "backup_train").exists()  # Keras removes the backup once a phase completes


def _history(out) -> list[dict[str, str]]:
    with open(out / "history_train.csv", newline="") as handle:
        return list(csv.DictReader(handle))


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


@pytest.mark.parametrize("tokenizer", ["words", "wordpiece"])
def test_killed_sentiment_run_resumes_with_the_same_vocabulary(sentences_file, tmp_path, tokenizer):
    """The vocabulary is made again on resume: it must come out identical, or the restored weights mean nothing."""
    out = tmp_path / "reviews"
    sets = ["model.architecture=gru", "train.epochs=6", "train.batch_size=16", "train.learning_rate=0.01",
            "train.progress=none", "train.early_stopping_patience=0", "preprocess.sequence_length=12",
            "model.embedding_dim=16", "model.units=16", "export.formats=[keras]", "model.embeddings=none",
            f"preprocess.tokenizer={tokenizer}", "preprocess.max_tokens=3000"]

    def vocabulary(run):
        if tokenizer == "wordpiece":
            return (run / "vocab.txt").read_text(encoding="utf-8")
        return keras.saving.load_model(run / "model.keras").get_layer("vectorize").get_vocabulary()

    with pytest.raises(KeyboardInterrupt):
        api.run("sentiment", data=str(sentences_file), out=out, sets=sets, callbacks=[InterruptAfter(2)],
                echo=lambda _: None)
    assert not (out / "metrics.json").exists()

    recorder = EpochRecorder()
    result = api.run("sentiment", out=out, resume=True, callbacks=[recorder], echo=lambda _: None)
    assert recorder.epochs == list(range(2, 6))
    assert result.metrics["accuracy"] >= 0.8
    resumed = vocabulary(out)

    fresh_out = tmp_path / "fresh"
    api.run("sentiment", data=str(sentences_file), out=fresh_out, sets=[*sets, "train.epochs=1"], echo=lambda _: None)
    assert resumed == vocabulary(fresh_out)
    for name in ("metrics.json", "training_curves.png", "confusion_matrix.png", "history_train.csv"):
        assert (out / name).is_file(), name
