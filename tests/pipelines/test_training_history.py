"""The history files resume depends on: a repeated epoch's later row wins, bad cells become NaN."""

from __future__ import annotations

import math

from dlpipe.pipelines.training.keras_fit import balanced_class_weights, best_so_far, read_history


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history_train.csv"
    path.write_text("epoch,accuracy,loss,val_loss\n0,0.5,1.0,1.1\n1,0.6,0.8,0.9\n1,0.7,0.7,0.8\n2,0.9,nan,\n")
    history = read_history(path)
    assert history["accuracy"] == [0.5, 0.7, 0.9] and history["loss"][:2] == [1.0, 0.7]
    assert math.isnan(history["loss"][2]) and math.isnan(history["val_loss"][2])
    assert read_history(tmp_path / "missing.csv") == {}


def test_best_so_far_seeds_the_resumed_checkpoint():
    history = {"val_loss": [0.9, 0.5, float("nan"), 0.7], "val_accuracy": [0.5, 0.8, 0.7]}
    assert best_so_far(history, "val_loss") == 0.5
    assert best_so_far(history, "val_accuracy") == 0.8
    assert best_so_far({}, "val_loss") is None


def test_balanced_class_weights():
    assert balanced_class_weights([0, 0, 0, 1], 2) == {0: 4 / 6, 1: 2.0}
    assert balanced_class_weights([0, 0], 3)[2] == 0.0
