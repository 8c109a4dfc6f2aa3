"""Issue 14, image side: cross-validation (resumable per fold), the linear probe, the lr finder, label smoothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_SETS, write_color_images

FAST = [*TINY_SETS, "export.formats=[]", "train.epochs=1"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    write_color_images(root / "blue", "blue", 12, seed=2)
    write_color_images(root / "red", "red", 12, seed=1)
    return root


@pytest.mark.long
def test_cross_validation_writes_each_fold_and_resumes_skipping_finished_folds(colours, tmp_path):
    from dlpipe.pipelines import api

    out = tmp_path / "cv"
    result = api.run("image-classify", data=str(colours), out=out, sets=[*FAST, "train.cv_folds=2"], echo=lambda _: None)
    cv = result.metrics["cross_validation"]
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2
    assert cv["pooled"]["count"] == 24  # every image validated exactly once
    low, high = cv["pooled"]["accuracy_interval"]
    assert low <= cv["pooled"]["accuracy"] <= high
    for fold in (0, 1):
        metrics = json.loads((out / "folds" / str(fold) / "metrics.json").read_text())
        assert metrics["count"] == 12
    assert json.loads((out / "metrics.json").read_text())["cross_validation"]["folds"] == 2
    assert (out / "cross_validation.png").stat().st_size > 0

    # a kill during fold 2: its run never finished; resuming skips fold 1 and completes fold 2
    # (the folds alone, as `dlpipe run --resume` does before it resumes the final run)
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.training.crossval import run_cross_validation

    fold0_written = (out / "folds" / "0" / "metrics.json").stat().st_mtime_ns
    report = json.loads((out / "folds" / "1" / "report.json").read_text())
    report.pop("finished")
    (out / "folds" / "1" / "report.json").write_text(json.dumps(report))
    (out / "folds" / "1" / "metrics.json").unlink()
    lines: list[str] = []
    again = run_cross_validation(get_pipeline("image-classify"), api.load_saved_config(out), out, resume=True,
                                 echo=lines.append)
    assert again["pooled"]["count"] == 24
    assert "fold 1/2: finished earlier, skipped" in lines
    assert any(line.startswith("fold 2/2: training") for line in lines)
    assert (out / "folds" / "0" / "metrics.json").stat().st_mtime_ns == fold0_written
    assert (out / "folds" / "1" / "metrics.json").is_file()


def test_probe_mode_fits_a_head_that_beats_chance_and_exports(colours, tmp_path):
    import keras
    import numpy as np

    from dlpipe.models.small_cnn import small_cnn
    from dlpipe.pipelines import api

    weights = tmp_path / "frozen.weights.h5"  # a fixed (random) backbone stands in for pretrained weights
    keras.utils.set_random_seed(0)
    small_cnn((32, 32, 3)).save_weights(weights)
    out = tmp_path / "probe"
    result = api.run("image-classify", data=str(colours), out=out, echo=lambda _: None,
                     sets=[*TINY_SETS, f"model.weights={weights}", "model.mode=probe", "train.refit=true",
                           "export.formats=[keras]", "load.val_split=0.5"])
    assert result.metrics["accuracy"] > 0.75  # chance is 0.5
    assert result.metrics["refit"]["examples"] == 24
    assert not list((out).glob("history_*.csv"))  # no epochs: the head is fitted on cached features
    assert list((out / "features").glob("*.npz"))
    from dlpipe.models.runtimes import load_runtime

    runtime = load_runtime(out / "model.keras", "keras")
    assert runtime.class_names == ["blue", "red"]
    pixels = np.stack([np.full((32, 32, 3), (30, 40, 220), np.float32), np.full((32, 32, 3), (220, 40, 30), np.float32)])
    assert runtime.predict(pixels).argmax(axis=1).tolist() == [0, 1]


def test_lr_find_writes_a_plot_and_a_rate_within_the_sweep(colours, tmp_path):
    import yaml

    from dlpipe.pipelines import api

    out = tmp_path / "lr"
    result = api.lr_find("image-classify", data=str(colours), out=out, echo=lambda _: None,
                         sets=[*TINY_SETS, "train.lr_find_steps=30"])
    assert (out / "lr_find.png").stat().st_size > 0
    assert result["min_lr"] <= result["chosen"] <= result["max_lr"]
    assert min(result["rates"]) <= result["chosen"] <= max(result["rates"])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["learning_rate"] == pytest.approx(result["chosen"])


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_label_smoothing_outside_0_1_is_a_clear_config_error(value):
    from dlpipe.errors import ConfigError
    from dlpipe.pipelines.api import resolve_config

    with pytest.raises(ConfigError, match=r"train\.label_smoothing.*\[0, 1\)"):
        resolve_config("image-classify", sets=[f"train.label_smoothing={value}"])


def test_label_smoothing_loss_matches_its_definition():
    import numpy as np

    from dlpipe.models.losses import SmoothedSparseCrossentropy

    probabilities = np.array([[0.7, 0.2, 0.1]], np.float32)
    loss = float(SmoothedSparseCrossentropy(0.3)(np.array([0]), probabilities))
    target = np.array([0.7 + 0.1, 0.1, 0.1])  # 1 - s on the class, s / k everywhere
    assert loss == pytest.approx(-np.sum(target * np.log(probabilities[0])), rel=1e-5)


@pytest.mark.long
def test_tune_writes_a_best_config_that_run_accepts_and_keeps_its_study(colours, tmp_path):
    from dlpipe.pipelines import api
    from dlpipe.pipelines.training.tuning import parse_space, tune

    out = tmp_path / "tune"
    lines: list[str] = []
    space = parse_space(["train.learning_rate=0.0005..0.005"])
    result = tune("image-classify", str(colours), out, budget_minutes=10, folds=2, sets=FAST, space=space,
                  max_trials=1, echo=lines.append)
    assert result["trials"] == 1
    assert sum(line.startswith("trial 0: 2-fold CV accuracy") for line in lines) == 1
    assert (out / "trials.png").stat().st_size > 0
    config = api.resolve_config("image-classify", out / "best.yaml")
    assert config["train"].learning_rate == pytest.approx(result["best_params"]["train.learning_rate"])
    assert config["train"].cv_folds == 0
    again = tune("image-classify", str(colours), out, budget_minutes=10, folds=2, sets=FAST, space=space,
                 max_trials=1, echo=lines.append)
    assert again["trials"] == 1  # the stored study already holds the trial: nothing new runs
    assert sum(line.startswith("trial ") for line in lines) == 1


def test_flip_tta_is_inside_the_exported_model(colours, tmp_path):
    import numpy as np

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines import api

    out = tmp_path / "tta"
    api.run("image-classify", data=str(colours), out=out, echo=lambda _: None,
            sets=[*TINY_SETS, "train.epochs=2", "evaluate.tta=flip", "export.formats=[keras,savedmodel]"])
    runtime = load_runtime(out / "model.keras", "keras")
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    both = runtime.predict(pixels)
    mirrored = runtime.predict(pixels[:, :, ::-1].copy())
    np.testing.assert_allclose(both, mirrored, atol=1e-5)  # mean of an image and its mirror: mirror-invariant
    saved = load_runtime(out, "savedmodel")
    np.testing.assert_allclose(saved.predict(pixels), both, atol=1e-5)
