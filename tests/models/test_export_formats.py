"""Every export format round-trips: SavedModel (bytes and pixels) and TFLite float32/float16/dynamic/int8."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from dlpipe.data.datasets import batched, decoded_images
from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.models.export_formats import (
    export_image_savedmodel,
    export_image_tflite,
    labels_from_tflite,
    representative_images,
)
from dlpipe.models.runtimes import load_runtime
from dlpipe.pipelines.cli import main
from dlpipe.serving.predictor import ImagePredictor, expand_inputs


@pytest.fixture(scope="module")
def trained(trained_run):
    root, run = trained_run
    predictor = ImagePredictor.load(str(run))
    paths = expand_inputs([str(root)])
    pixels = next(iter(batched(decoded_images(paths, None, predictor.preprocessing), len(paths))))
    if isinstance(pixels, tuple):
        pixels = pixels[0]
    return root, run, predictor, paths, pixels.numpy()


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    root, run, predictor, paths, _ = trained
    out = tmp_path_factory.mktemp("exports")
    files = {"savedmodel": export_image_savedmodel(predictor.model, out / "savedmodel", predictor.class_names,
                                                   predictor.preprocessing)}
    sample = representative_images(paths, predictor.preprocessing, count=24)
    for quantize in ("none", "float16", "dynamic", "int8"):
        files[quantize] = export_image_tflite(predictor.model, out / f"{quantize}.tflite", predictor.class_names,
                                              predictor.preprocessing, quantize, sample if quantize == "int8" else None)
    return files


def test_savedmodel_and_float_tflite_match_keras(trained, exports):
    _, _, predictor, _, pixels = trained
    expected = predictor.predict_pixels(pixels)
    np.testing.assert_allclose(load_runtime(exports["savedmodel"]).predict(pixels), expected, atol=1e-4)
    np.testing.assert_allclose(load_runtime(exports["none"]).predict(pixels), expected, atol=1e-4)
    np.testing.assert_allclose(load_runtime(exports["float16"]).predict(pixels), expected, atol=2e-2)
    np.testing.assert_allclose(load_runtime(exports["dynamic"]).predict(pixels), expected, atol=5e-2)


def test_int8_agrees_on_top1_and_is_small(trained, exports):
    _, _, predictor, _, pixels = trained
    runtime = load_runtime(exports["int8"])
    interpreter = runtime.interpreter
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    agreement = (runtime.predict(pixels).argmax(1) == predictor.predict_pixels(pixels).argmax(1)).mean()
    assert agreement >= 0.8
    assert exports["int8"].stat().st_size * 3 <= exports["none"].stat().st_size


def test_savedmodel_stores_each_weight_once(trained, exports):
    from conftest import stored_weight_values, variable_values

    assert stored_weight_values(exports["savedmodel"]) == variable_values(trained[2].model)


def test_predictor_runs_exported_files(trained, exports):
    """`dlpipe predict` on a SavedModel folder or a .tflite file gives the Keras model's labels and scores."""
    root, _, predictor, paths, _ = trained
    expected = predictor.predict_files(paths[:8], top_k=2)
    for artifact in (exports["savedmodel"], exports["none"]):
        rows = ImagePredictor.load(str(artifact)).predict_files(paths[:8], top_k=2)
        assert [row["label"] for row in rows] == [row["label"] for row in expected]
        np.testing.assert_allclose([row["score"] for row in rows], [row["score"] for row in expected], atol=1e-4)


def test_raw_bytes_signature_equals_the_pixel_path(trained, exports):
    _, _, predictor, paths, pixels = trained
    runtime = load_runtime(exports["savedmodel"])
    encoded = [open(path, "rb").read() for path in paths[:6]]
    result = runtime.predict_bytes(encoded)
    np.testing.assert_allclose(result["probabilities"], runtime.predict(pixels[:6]), atol=1e-5)
    assert [label.decode() for label in result["label"]] == [predictor.class_names[i] for i in result["probabilities"].argmax(1)]


def test_corrupt_bytes_fail_with_a_clear_message(trained, exports):
    paths = trained[3]
    runtime = load_runtime(exports["savedmodel"])
    good = open(paths[0], "rb").read()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not a JPEG, PNG, GIF or BMP image at index\] \[1 3\]"):
        runtime.predict_bytes([good, b"definitely not an image", good, b""])
    # a file that starts like a JPEG but breaks later still fails, with the decoder's reason
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)jpeg"):
        runtime.predict_bytes([good[:200]])


def test_labels_and_preprocessing_travel_with_every_artifact(trained, exports):
    _, _, predictor, _, _ = trained
    for path in exports.values():
        runtime = load_runtime(path)
        assert runtime.class_names == predictor.class_names
        assert runtime.preprocessing == predictor.preprocessing
        if path.suffix == ".tflite":  # inside the file too, as metadata
            assert labels_from_tflite(path) == predictor.class_names


def test_a_write_that_dies_midway_keeps_the_old_export(trained, exports, monkeypatch):
    _, _, predictor, _, _ = trained
    folder = exports["savedmodel"]
    before = {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(artifacts, "write_preprocessing", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_image_savedmodel(predictor.model, folder, predictor.class_names, predictor.preprocessing)
    assert {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".savedmodel")]


def test_failed_export_leaves_the_old_one_in_place(trained, exports):
    _, _, predictor, _, _ = trained
    folder = exports["savedmodel"]
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(DataError, match="cannot be saved in the graph"):
        export_image_savedmodel(predictor.model, folder, predictor.class_names,
                                dataclasses.replace(predictor.preprocessing, filter="median"))
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".savedmodel")]


def test_export_and_evaluate_commands(trained, tmp_path):
    root, run, _, _, _ = trained
    result = CliRunner().invoke(main, ["export", str(run), "--format", "tflite", "--quantize", "int8", "--out", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model_int8.tflite").is_file() and (tmp_path / "labels.txt").is_file()
    evaluated = CliRunner().invoke(main, ["evaluate", str(tmp_path / "model_int8.tflite"), "--data", str(root),
                                          "--out", str(tmp_path / "metrics.json")], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] >= 0.8
    bad = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing.tflite"), "--data", str(root)])
    assert bad.exit_code == 2 and "does not exist" in bad.output
