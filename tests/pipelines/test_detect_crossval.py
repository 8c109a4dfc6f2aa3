"""`train.cv_folds` and `dlpipe tune` on the detect pipeline: folds pool every photo's boxes into one mAP."""

from __future__ import annotations

import json

import pytest

from dlpipe.pipelines import api
from dlpipe.pipelines.training.tuning import tune
from helpers_boxes import write_box_dataset

pytestmark = pytest.mark.long  # k-fold training and a search: bench/long_checks.py, not the 10-minute suite

QUICK_SETS = [
    "model.encoder=small", "model.weights=none", "model.image_size=64", "model.neck_filters=[16,16,16]",
    "model.head_filters=8", "train.epochs=2", "train.batch_size=8", "train.tensorboard=false", "train.progress=none",
    "train.early_stopping_patience=0", "evaluate.bootstrap=20", "evaluate.plots=false", "export.formats=[keras]",
    "export.parity_sample=0",
]


def test_cross_validation_pools_every_photo_once_and_names_each_folds_cpu_time(tmp_path):
    data = tmp_path / "coco"
    write_box_dataset(data, "coco", n_photos=8, size=64, seed=4)
    out = tmp_path / "cv"
    api.run("detect", data=str(data), out=out, sets=[*QUICK_SETS, "train.cv_folds=2"], echo=lambda _: None)
    summary = json.loads((out / "cv.json").read_text())
    pooled = summary["pooled"]
    assert summary["folds"] == 2 and pooled["count"] == 8  # each photo scored once, by the model that did not see it
    folds = [json.loads((out / "folds" / str(k) / "metrics.json").read_text()) for k in range(2)]
    held = [photo for fold in folds for photo in fold["predictions"]["inputs"]]
    assert sorted(held) == sorted(str(p) for p in (data / "images").glob("*.jpg"))
    assert pooled["objects"] == sum(fold["objects"] for fold in folds)
    assert 0.0 <= pooled["map"] <= 1.0 and len(summary["train_cpu_minutes"]) == 2
    assert all(minutes > 0 for minutes in summary["train_cpu_minutes"])
    final = json.loads((out / "metrics.json").read_text())
    assert final["cross_validation"]["pooled"]["map"] == pooled["map"]
    assert (out / "cross_validation.png").stat().st_size > 0


def test_tune_searches_the_detector_and_its_best_config_is_a_detect_config(tmp_path):
    data = tmp_path / "coco"
    write_box_dataset(data, "coco", n_photos=8, size=64, seed=5)
    # one trial (two fold trainings): the search over several trials is image-classify's and sentiment's tune tests';
    # here the detector's pooled mAP is the objective and its best config a detect config
    found = tune("detect", str(data), tmp_path / "study", budget_minutes=5, folds=2, sets=QUICK_SETS,
                 space={"train.learning_rate": ("float", 1e-3, 1e-2, True)}, max_trials=1, echo=lambda _: None)
    assert found["trials"] == 1 and "train.learning_rate" in found["best_params"]
    assert 0.0 <= found["best_value"] <= 1.0
    best = api.resolve_config("detect", tmp_path / "study" / "best.yaml")
    assert best["train"].learning_rate == pytest.approx(found["best_params"]["train.learning_rate"])
    assert best["model"].encoder == "small" and best["train"].cv_folds == 0
