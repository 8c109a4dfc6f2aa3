"""Text tokenizers: one object per tokenizer, looked up by name once; no other module compares tokenizer names;
an artifact exported when preprocessing.json said "vectorize" still loads and predicts as it did."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import ConfigError, DataError
from dlpipe.models.text_tokenizers import TOKENIZERS, WordPieceTextTokenizer, WordsTokenizer, tokenizer_for, tokenizer_named

REPO = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("data", "models", "pipelines", "serving", "dlpipe")
TOKENIZERS_PACKAGE = REPO / "models" / "text_tokenizers"
OLD_NAMES = {"vectorize"}  # what artifacts exported before the `words` name said


def _names_compared(source: str) -> list[int]:
    """Line numbers where code branches on a tokenizer name: a comparison or a lookup keyed by `.tokenizer`, or a
    comparison with a tokenizer's name."""
    names = set(TOKENIZERS.names()) | OLD_NAMES

    def is_tokenizer(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Attribute) and node.attr == "tokenizer")
                or (isinstance(node, ast.Name) and node.id == "tokenizer")
                or (isinstance(node, ast.Constant) and node.value in names))

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(is_tokenizer(side) for side in (node.left, *node.comparators)):
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and is_tokenizer(node.slice):
            lines.append(node.lineno)
    return lines


def test_the_check_finds_a_branch_on_a_tokenizer_name():
    assert _names_compared('if prep.tokenizer == "wordpiece":\n    pass\n') == [1]
    assert _names_compared('x = "pieces" if cfg.tokenizer != "words" else "words"\n') == [1]
    assert _names_compared('f = {"words": a, "wordpiece": b}[prep.tokenizer]\n') == [1]
    assert _names_compared('if "vectorize" == name:\n    pass\n') == [1]
    assert _names_compared('tokenizer = tokenizer_for(prep)\nif tokenizer.ids_fed:\n    pass\n') == []


def test_no_module_outside_the_tokenizers_compares_a_tokenizer_name():
    found = []
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if TOKENIZERS_PACKAGE in path.parents:
                continue
            found += [f"{path.relative_to(REPO)}:{line}" for line in _names_compared(path.read_text(encoding="utf-8"))]
    assert not found, f"branches on a tokenizer name outside models/text_tokenizers/: {found}"


def test_the_old_name_is_mapped_in_one_place():
    """"vectorize" appears (as code, not prose) only in data/text.py's map of old names and as the layer name."""
    places = []
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in OLD_NAMES:
                    places.append(str(path.relative_to(REPO)))
    assert sorted(places) == ["data/text.py", "models/text_tokenizers/words.py"]


def test_lookup_by_name_with_a_did_you_mean():
    assert isinstance(tokenizer_named("words"), WordsTokenizer)
    assert isinstance(tokenizer_named("wordpiece"), WordPieceTextTokenizer)
    with pytest.raises(ConfigError, match=r"preprocess.tokenizer: unknown text tokenizer 'word' \(did you mean 'words'\?\)"):
        tokenizer_named("word")
    with pytest.raises(DataError, match=r"model/preprocessing.json: unknown text tokenizer 'sentencepiece'"):
        tokenizer_for(TextPreprocessing(tokenizer="sentencepiece"), "model/preprocessing.json")


def test_new_specs_say_words_and_old_ones_saying_vectorize_read_as_words():
    assert TextPreprocessing().to_dict()["tokenizer"] == "words"
    old = {"task": "text", "max_tokens": 100, "sequence_length": 12, "lowercase": True, "strip_punctuation": True,
           "tokenizer": "vectorize", "vocab_file": None}
    prep = TextPreprocessing.from_dict(old)
    assert prep == TextPreprocessing(max_tokens=100, sequence_length=12, tokenizer="words")
    assert isinstance(tokenizer_for(prep), WordsTokenizer)
    assert TextPreprocessing.from_dict({**old, "tokenizer": "wordpiece", "vocab_file": "vocab.txt"}).tokenizer == "wordpiece"


def test_an_old_artifact_saying_vectorize_loads_and_predicts_as_before(tmp_path):
    """A words model's .tflite and .keras with a preprocessing.json as exported before the rename give the
    model's own probabilities through dlpipe's runtime."""
    import keras
    import tensorflow as tf

    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import get_task
    from dlpipe.models.text_classifiers import make_vectorizer, recurrent_classifier

    texts = ["a great film, truly great", "awful and dull acting", "I loved it", "boring plot", "zzz unknown words"]
    prep = TextPreprocessing(max_tokens=50, sequence_length=8)
    keras.utils.set_random_seed(3)
    model = recurrent_classifier(make_vectorizer(texts, prep.max_tokens, 8, prep.standardize), 2, "gru",
                                 embedding_dim=8, units=8, dropout=0.0)
    bundle = artifacts.Bundle("text", ["negative", "positive"], prep, get_task("text").side_files_for(model, prep))
    folder = tmp_path / "old"
    for fmt in ("tflite", "keras"):
        export(model, fmt, folder, ExportRequest(bundle))
    spec = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
    assert spec["tokenizer"] == "words"
    (folder / "preprocessing.json").write_text(json.dumps({**spec, "tokenizer": "vectorize"}), encoding="utf-8")

    expected = model.predict(tf.constant(texts), verbose=0)
    assert np.ptp(expected[:, 0]) > 1e-4  # the texts get different probabilities: a wrong tokenisation would show
    for artifact in ("float32", "keras"):
        runtime = load_runtime(folder, artifact)
        assert runtime.preprocessing.tokenizer == "words"
        np.testing.assert_allclose(runtime.predict(texts), expected, rtol=0, atol=1e-4)
