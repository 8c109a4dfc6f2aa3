"""`dlpipe run image-classify` end to end on a generated folder, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from click.testing import CliRunner

from conftest import write_color_images
from dlpipe.pipelines.cli import main
from dlpipe.data.datasets import batched, decoded_images
from dlpipe.data.preprocess import ImagePreprocessing


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, request):
    """One full run on a messy 2-class folder; the tests below inspect what it left."""
    root = tmp_path_factory.mktemp("messy") / "colors"
    write_color_images(root / "red", "red", 24, seed=1)
    write_color_images(root / "blue", "blue", 24, seed=2, fmt="PNG")
    (root / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"junk" * 50)
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), (220, 30, 30), np.uint8)).convert("P").save(root / "red" / "gif.jpg", "GIF")
    (root / "empty").mkdir()
    out = tmp_path_factory.mktemp("run") / "out"
    sets = request.getfixturevalue("tiny_sets")
    result = run_cli("run", "image-classify", "--data", str(root), "--out", str(out),
                     *[arg for s in sets for arg in ("--set", s)])
    return root, out, result


@pytest.fixture(scope="module")
def tiny_sets():
    from conftest import TINY_SETS

    # the one tiny image run that keeps the augment stage covered, and the SavedModel beside the .keras file
    return [*TINY_SETS, "augment.enabled=true", "export.formats=[keras,savedmodel]"]


def test_run_succeeds_and_beats_chance(finished_run):
    _, out, result = finished_run
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8  # chance is 0.5
    assert set(metrics["per_class"]) == {"blue", "red"}
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["count"] == 10
    for name in ("training_curves.png", "confusion_matrix.png", "config.yaml", "report.json", "labels.txt"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "labels.txt").read_text().split() == ["blue", "red"]


def test_bad_files_are_reported_not_fatal(finished_run):
    _, out, result = finished_run
    report = json.loads((out / "report.json").read_text())
    skipped = report["data"]["skipped"]
    assert [Path(s["path"]).name for s in skipped] == ["corrupt.jpg"]
    notes = {Path(n["path"]).name: n["note"] for n in report["data"]["notes"]}
    assert "GIF data" in notes["gif.jpg"] and "no usable images" in notes["empty"]
    assert "skipped" in result.output and "corrupt.jpg" in result.output
    assert all(stage["status"] == "done" for stage in report["stages"].values())


def test_saved_config_reproduces_the_run_settings(finished_run):
    _, out, _ = finished_run
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["backbone"] == "small_cnn"
    assert saved["train"]["epochs"] == 8
    assert saved["model"]["image_size"] == 32
    assert saved["augment"]["enabled"] is True


def test_exported_models_agree_with_each_other(finished_run):
    root, out, _ = finished_run
    model = keras.saving.load_model(out / "model.keras")
    prep = ImagePreprocessing(**{k: v for k, v in json.loads((out / "preprocessing.json").read_text()).items() if k != "task"})
    paths = sorted(str(p) for p in (root / "blue").iterdir())[:4] + sorted(str(p) for p in (root / "red").glob("red_*"))[:4]
    images = next(iter(batched(decoded_images(paths, [0] * 8, prep), 8)))[0]
    keras_probs = model.predict(images, verbose=0)
    served = tf.saved_model.load(str(out / "savedmodel"))
    saved_probs = served.signatures["serving_pixels"](pixels=images)["probabilities"].numpy()
    np.testing.assert_allclose(saved_probs, keras_probs, atol=1e-5)
    assert (keras_probs.argmax(1) == [0, 0, 0, 0, 1, 1, 1, 1]).mean() >= 0.75


def test_rerun_into_the_same_folder_needs_resume_or_overwrite(finished_run):
    root, out, _ = finished_run
    result = CliRunner().invoke(main, ["run", "image-classify", "--data", str(root), "--out", str(out)])
    assert result.exit_code == 2
    assert "already holds a run; pass --resume" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "/no/such/folder: folder does not exist"),
        (["--set", "train.epoch=3"], "train.epoch: unknown key (did you mean 'epochs'?)"),
        ([], "load.path: no dataset given; pass --data DIR"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", "image-classify", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_single_class_folder_is_a_clear_error(tmp_path):
    write_color_images(tmp_path / "data" / "ants", "red", 3, seed=0)
    result = CliRunner().invoke(main, ["run", "image-classify", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "needs at least two class sub-folders with images, found 'ants'" in result.output


def test_pipelines_and_config_commands_explain_themselves():
    listed = run_cli("pipelines")
    assert "image-classify (task image)" in listed.output and "load -> model -> preprocess -> augment" in listed.output
    config = run_cli("config", "image-classify")
    assert "finetune_epochs: 0  # [default] epochs of the second phase" in config.output
    # each stage's help is its class docstring, each section's the docstring of its config class
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline("image-classify")
    for role in spec.roles:
        stage = spec.stage_class(role)
        assert f"# {role}: {stage.__doc__.strip().splitlines()[0]}" in config.output
        assert f"{role}:  # {stage.config_cls.__doc__.strip().splitlines()[0]}" in config.output
    help_text = run_cli("run", "--help").output
    for option in ("--data", "--out", "--config", "--set", "--resume", "--overwrite"):
        assert option in help_text
