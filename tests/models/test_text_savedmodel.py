"""Text SavedModels take raw strings: same probabilities as the Keras model, self-contained, and honest on odd input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, export
from dlpipe.models.tasks import get_task
from assets import MINILM, requires


def export_text_savedmodel(model, folder: Path, class_names, prep: TextPreprocessing, vocab_file=None) -> Path:
    """The text task's SavedModel export through the one export function; `folder` is the SavedModel's own path."""
    extra = {"vocab.txt": Path(vocab_file)} if vocab_file else (
        get_task("text").side_files_for(model, prep) if prep.tokenizer == "words" else {})
    written = export(model, "savedmodel", folder.parent, ExportRequest(artifacts.Bundle("text", class_names, prep, extra)))
    return written.rename(folder) if written != folder else written

CLASSES = ["negative", "positive"]
LENGTH = 16
SENTENCES = ["Great phone, love it!", "Terrible service. Never again...", "Café naïve résumé — déjà vu",
             "ALL CAPS 😀 and a very long sentence that goes well past sixteen word pieces for sure", ""]

needs_minilm = requires(**MINILM)


@pytest.fixture(scope="module")
def minilm_export(tmp_path_factory) -> SimpleNamespace:
    """MiniLM classifier exported with the vocab at a path given apart (preprocessing.json keeps a bare name, as
    in a run folder); both vocab files are deleted afterwards, so the reloaded SavedModel must carry its own."""
    from dlpipe.models.minilm import minilm_files, minilm_tokenizer
    from dlpipe.models.text_classifiers import minilm_classifier

    model = minilm_classifier(num_classes=2, sequence_length=LENGTH)
    work = tmp_path_factory.mktemp("minilm")
    vocab = work / "vocab.txt"
    shutil.copy(minilm_files()[1], vocab)
    prep = TextPreprocessing(sequence_length=LENGTH, tokenizer="wordpiece", vocab_file="vocab.txt")
    folder = export_text_savedmodel(model, work / "savedmodel", CLASSES, prep, vocab_file=vocab)
    copied_beside = (folder / "vocab.txt").read_bytes() == vocab.read_bytes()
    vocab.unlink()
    (folder / "vocab.txt").unlink()  # the copy beside is for clients that tokenise in Python, not for the graph
    return SimpleNamespace(model=model, tokenizer=minilm_tokenizer(), loaded=tf.saved_model.load(str(folder)),
                           folder=folder, copied_beside=copied_beside)


def keras_probabilities(model, tokenizer, texts: list[str]) -> np.ndarray:
    batch = tokenizer.encode(texts, max_length=LENGTH)
    return model.predict({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, verbose=0)


@needs_minilm
def test_minilm_savedmodel_takes_strings_and_matches_keras(minilm_export):
    model, tokenizer, loaded = minilm_export.model, minilm_export.tokenizer, minilm_export.loaded
    out = loaded.signatures["serving_default"](text=tf.constant(SENTENCES))
    expected = keras_probabilities(model, tokenizer, SENTENCES)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [label.decode() for label in out["label"].numpy()] == [CLASSES[i] for i in expected.argmax(1)]
    np.testing.assert_allclose(out["score"].numpy(), expected.max(1), atol=1e-5)


@needs_minilm
def test_each_weight_is_stored_once(minilm_export):
    from conftest import stored_weight_values, variable_values

    assert stored_weight_values(minilm_export.folder) == variable_values(minilm_export.model)
    assert len(minilm_export.loaded.variables) == len(minilm_export.model.variables)


@needs_minilm
def test_minilm_token_ids_signature(minilm_export):
    model, tokenizer, loaded = minilm_export.model, minilm_export.tokenizer, minilm_export.loaded
    batch = tokenizer.encode(SENTENCES[:2], max_length=LENGTH)
    serve = loaded.signatures["serving_token_ids"]
    assert set(serve.structured_input_signature[1]) == {"input_ids", "attention_mask"}
    out = serve(input_ids=tf.constant(batch["input_ids"]), attention_mask=tf.constant(batch["attention_mask"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_probabilities(model, tokenizer, SENTENCES[:2]),
                               atol=1e-5)


@needs_minilm
def test_minilm_export_files(minilm_export):
    folder = minilm_export.folder
    assert minilm_export.copied_beside
    assert (folder / "labels.txt").read_text(encoding="utf-8").splitlines() == CLASSES
    prep = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
    assert prep["task"] == "text" and prep["tokenizer"] == "wordpiece" and prep["vocab_file"] == "vocab.txt"


@needs_minilm
def test_empty_batch(minilm_export):
    out = minilm_export.loaded.signatures["serving_default"](text=tf.constant([], tf.string))
    assert out["probabilities"].shape == (0, 2) and out["label"].shape == (0,) and out["score"].shape == (0,)


@needs_minilm
def test_invalid_utf8_is_replaced_not_an_error(minilm_export):
    """Bad bytes become U+FFFD, which the tokenizer drops: the row is classified as its readable part."""
    model, tokenizer, loaded = minilm_export.model, minilm_export.tokenizer, minilm_export.loaded
    out = loaded.signatures["serving_default"](text=tf.constant([b"great \xff\xfe phone", b"caf\xc3"]))
    expected = keras_probabilities(model, tokenizer, ["great phone", "caf"])
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


@needs_minilm
def test_loading_needs_tensorflow_text_imported_first(minilm_export):
    """A fresh process: without `import tensorflow_text` the TF Text ops are unknown; after it, the model loads."""
    script = (
        "import sys, tensorflow as tf\n"
        "try:\n"
        "    tf.saved_model.load(sys.argv[1])\n"
        "    print('LOADED WITHOUT TF TEXT')\n"
        "except Exception as error:\n"
        "    print('FAILED:', str(error).splitlines()[0])\n"
        "import tensorflow_text\n"
        "out = tf.saved_model.load(sys.argv[1]).signatures['serving_default'](text=tf.constant(['good']))\n"
        "print('LABEL', out['label'].numpy()[0].decode())\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(minilm_export.folder)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "FAILED: Op type not registered 'NormalizeUTF8'" in run.stdout, run.stdout + run.stderr
    assert any(line.startswith("LABEL ") and line[6:] in CLASSES for line in run.stdout.splitlines()), run.stderr


def test_vectorize_model_savedmodel_matches_keras(tmp_path, sentences_file: Path):
    from dlpipe.models.text_classifiers import make_vectorizer, recurrent_classifier

    texts = [line.split("\t")[0] for line in sentences_file.read_text(encoding="utf-8").splitlines()]
    model = recurrent_classifier(make_vectorizer(texts, 100, 12, "lower_and_strip_punctuation"), 2, "gru", 8, 8)
    prep = TextPreprocessing(max_tokens=100, sequence_length=12)
    folder = export_text_savedmodel(model, tmp_path / "savedmodel", CLASSES, prep)
    loaded = tf.saved_model.load(str(folder))
    assert list(loaded.signatures) == ["serving_default"] and not (folder / "vocab.txt").exists()
    sample = texts[:6] + ["never seen words at all", ""]
    out = loaded.signatures["serving_default"](text=tf.constant(sample))
    expected = model.predict(tf.constant(sample), verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [label.decode() for label in out["label"].numpy()] == [CLASSES[i] for i in expected.argmax(1)]
    assert loaded.signatures["serving_default"](text=tf.constant([], tf.string))["probabilities"].shape == (0, 2)


def test_bad_export_requests(tmp_path):
    import keras

    inputs = {name: keras.Input(shape=(8,), dtype="int32", name=name) for name in ("input_ids", "attention_mask")}
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.ops.cast(inputs["input_ids"], "float32")))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\n", encoding="utf-8")
    with pytest.raises(DataError, match="needs its vocab.txt"):
        export_text_savedmodel(model, tmp_path / "a" / "savedmodel", CLASSES,
                               TextPreprocessing(sequence_length=8, tokenizer="wordpiece"))
    with pytest.raises(DataError, match="takes 8 tokens"):
        export_text_savedmodel(model, tmp_path / "b" / "savedmodel", CLASSES,
                               TextPreprocessing(sequence_length=16, tokenizer="wordpiece", vocab_file="vocab.txt"), vocab)
    with pytest.raises(DataError, match="unknown text tokenizer"):
        export_text_savedmodel(model, tmp_path / "c" / "savedmodel", CLASSES, TextPreprocessing(tokenizer="sentencepiece"))
    assert not list(tmp_path.rglob("saved_model.pb")) and not list(tmp_path.rglob(".savedmodel*"))
