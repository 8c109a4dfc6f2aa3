"""`tfhub:<path>` backbones: a SavedModel the test saves itself stands in for a TF-Hub module."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from conftest import TINY_SETS
from dlpipe.errors import ConfigError, WeightsUnavailableError
from dlpipe.models.backbones import get_backbone
from dlpipe.models.classifier import build_classifier
from dlpipe.models.finetune import unfreeze_top_blocks
from dlpipe.pipelines import api


@pytest.fixture(scope="module")
def hub_module(tmp_path_factory):
    """A feature-vector SavedModel: pixels in [0, 1] -> 8 features (Keras 3 export, like a TF2 hub module)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    module = keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("hub") / "feature_vector"
    module.export(str(path), verbose=False)
    return path, module


def test_module_becomes_a_frozen_backbone_with_the_same_features(hub_module):
    path, module = hub_module
    spec = get_backbone(f"tfhub:{path}")
    assert spec.normalization == "unit"
    backbone = spec.build((32, 32, 3), "imagenet")
    pixels = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(backbone.predict(pixels, verbose=0), module.predict(pixels, verbose=0), atol=1e-5)
    classifier = build_classifier(spec, 3, 32, "imagenet")
    assert not classifier.get_layer("backbone").trainable
    assert classifier.output_shape == (None, 3)
    hub_weights = len(classifier.get_layer("backbone").weights)
    assert len(classifier.trainable_weights) == 2  # only the head's kernel and bias
    unfreeze_top_blocks(classifier.get_layer("backbone"), spec.block_pattern, 2)
    assert len(classifier.trainable_weights) == 2 + hub_weights


def test_fine_tuning_really_changes_the_module_features(hub_module):
    """Training must update the variables the module's function reads, not copies of them."""
    path, _ = hub_module
    spec = get_backbone(f"tfhub:{path}")
    classifier = build_classifier(spec, 2, 32, "imagenet")
    backbone = classifier.get_layer("backbone")
    unfreeze_top_blocks(backbone, spec.block_pattern, -1)
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 2, 16)
    features_before = backbone.predict(pixels / 255.0, verbose=0)
    classifier.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    classifier.fit(pixels, labels, epochs=2, verbose=0)
    features_after = backbone.predict(pixels / 255.0, verbose=0)
    assert not np.allclose(features_before, features_after, atol=1e-4)


def test_bad_handles_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="neither a folder nor a URL"):
        get_backbone("tfhub:nowhere/at/all").build((32, 32, 3), "imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a SavedModel folder"):
        get_backbone(f"tfhub:{tmp_path / 'empty'}").build((32, 32, 3), "imagenet")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub-cache"))
    with pytest.raises(WeightsUnavailableError, match="not in .*hub-cache"):
        get_backbone("tfhub:https://tfhub.dev/google/example/feature_vector/1").build((32, 32, 3), "imagenet")


def _file_digests(folder) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_image_classify_trains_on_a_hub_module(hub_module, color_folder, tmp_path):
    path, module = hub_module
    before = _file_digests(path)
    sets = [*TINY_SETS, f"model.backbone=tfhub:{path}", "model.weights=imagenet", "train.epochs=6",
            "train.finetune_epochs=2", "train.learning_rate=0.05", "preprocess.resize=stretch",
            "export.formats=[keras,savedmodel]"]  # the hub module inside a SavedModel
    result = api.run("image-classify", data=str(color_folder), out=tmp_path / "run", sets=sets, echo=lambda _: None)
    summary = json.loads((tmp_path / "run" / "report.json").read_text())["stages"]["train"]["summary"]
    assert "2 phase(s): head, finetune" in summary  # then the refit and the linear probe, on small data
    assert result.metrics["accuracy"] >= 0.7
    assert (tmp_path / "run" / "history_finetune.csv").is_file()
    assert (tmp_path / "run" / "savedmodel" / "saved_model.pb").is_file()
    # fine-tuning changed the copy inside the run's model, never the module on disk: same bytes, same features
    assert _file_digests(path) == before
    reloaded = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    pixels = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    outputs = reloaded(pixels)
    outputs = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
    np.testing.assert_allclose(np.asarray(outputs), module.predict(pixels, verbose=0), atol=1e-6)


def test_a_hub_models_name_is_a_valid_keras_name_whatever_its_path():
    """The classifier is named after the handle's last 40 characters: a cut through a separator once left a leading
    underscore, which Keras refuses as a root scope name (it depended on the length of pytest's folder number)."""
    import re
    from types import SimpleNamespace

    from dlpipe.models.classifier import _model_name

    for handle in ("tfhub:/tmp/pytest-of-root/pytest-11/popen-gw0/hub0/feature_vector",
                   "tfhub:/tmp/pytest-of-root/pytest-9/popen-gw0/hub0/feature_vector", "tfhub:///"):
        name = _model_name(SimpleNamespace(name=handle))
        assert re.fullmatch(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*", name), (handle, name)
