"""The `mlp` backbone: shape and options, registration, learning on real digits, and the image pipeline end to end."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import TINY_SETS
from dlpipe.data.builtin_datasets import array_dataset, load_builtin
from dlpipe.errors import ConfigError
from dlpipe.models.backbones import get_backbone
from dlpipe.models.classifier import build_classifier
from dlpipe.models.mlp import mlp


def test_mlp_maps_pixels_to_its_last_hidden_layer():
    model = mlp((28, 28, 1), widths=(64, 32), dropout=0.1, batch_norm=True, l2=1e-4)
    assert model.output_shape == (None, 32)
    dense = model.get_layer("dense0")
    assert dense.kernel.shape == (784, 64) and not dense.use_bias  # batch-norm replaces the bias
    assert dense.kernel_regularizer is not None
    plain = mlp((8, 8, 3), widths=(16,), dropout=0.0, batch_norm=False, initializer="glorot_uniform")
    assert plain.get_layer("dense0").use_bias
    assert not any(isinstance(layer, (keras.layers.Dropout, keras.layers.BatchNormalization)) for layer in plain.layers)


@pytest.mark.parametrize("kwargs, match", [
    ({"widths": ()}, "widths"), ({"widths": (0,)}, "widths"), ({"dropout": 1.0}, "dropout"),
    ({"initializer": "zeros"}, "initializer"), ({"l2": -1.0}, "l2"),
])
def test_bad_options_name_the_argument_and_the_received_value(kwargs, match):
    with pytest.raises(ValueError, match=f"`{match}`.*Received"):
        mlp(**kwargs)


def test_mlp_is_a_from_scratch_backbone_row():
    spec = get_backbone("mlp")
    assert not spec.pretrained and spec.feature_dim == 256 and spec.normalization == "unit"
    with pytest.raises(ConfigError, match="has no pretrained weights"):
        build_classifier(spec, 10, 28, "imagenet")


def _fit_and_score(backbone: str, epochs: int, count: int) -> float:
    """Train the dlpipe classifier on `count` mnist-5k training digits; accuracy on 300 held-out digits."""
    keras.utils.set_random_seed(0)
    data = load_builtin("mnist-5k", limit=count)
    train = array_dataset(data.train_images, data.train_labels).cache().shuffle(count, seed=0).batch(32)
    test = array_dataset(data.test_images[:300], data.test_labels[:300]).batch(100)
    model = build_classifier(get_backbone(backbone), 10, 28, None)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=epochs, verbose=0)
    return model.evaluate(test, verbose=0)[1]


def test_mlp_learns_real_digits_well_above_chance():
    assert _fit_and_score("mlp", epochs=3, count=1000) > 0.8  # chance is 0.1


def test_small_cnn_learns_the_same_digits():
    assert _fit_and_score("small_cnn", epochs=3, count=600) > 0.7  # 0.94 measured; batch-norm statistics need the steps


def test_image_classify_trains_and_exports_an_mlp(trained_mlp_run):
    """The existing pipeline, unchanged: train on a folder, then SavedModel and full-integer TFLite agree with Keras."""
    from dlpipe.data.datasets import decoded_images
    from dlpipe.models.runtimes import load_runtime
    root, out, result = trained_mlp_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8  # chance is 0.5
    assert "mlp" in result.report["stages"]["model"]["summary"]
    keras_runtime = load_runtime(out, "keras")
    paths = keras_runtime.task.collect_inputs([str(root)]).ids
    pixels = np.stack([x.numpy() for x in decoded_images(paths, None, keras_runtime.preprocessing)])
    expected = keras_runtime.model.predict(pixels, verbose=0)
    saved = load_runtime(out / "savedmodel").predict(pixels)
    np.testing.assert_allclose(saved, expected, atol=1e-5)
    int8 = load_runtime(out / "model_int8.tflite").predict(pixels)
    assert np.mean(int8.argmax(1) == expected.argmax(1)) >= 0.9
    assert np.abs(int8 - expected).max() < 0.15
    # on the labelled folder, int8 is right at most 0.1 less often than Keras, SavedModel exactly as often
    truth = np.array([keras_runtime.class_names.index(Path(path).parent.name) for path in paths])
    keras_accuracy = np.mean(expected.argmax(1) == truth)
    assert keras_accuracy >= 0.8 and np.mean(saved.argmax(1) == truth) == keras_accuracy
    assert np.mean(int8.argmax(1) == truth) >= keras_accuracy - 0.1


@pytest.fixture(scope="module")
def trained_mlp_run(tmp_path_factory):
    from conftest import tiny_image_run

    sets = [s for s in TINY_SETS if not s.startswith("model.backbone")]
    return tiny_image_run(tmp_path_factory, [*sets, "model.backbone=mlp", "export.formats=[keras,savedmodel,tflite-int8]"])
