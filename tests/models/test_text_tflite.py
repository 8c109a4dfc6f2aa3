"""Text TFLite export: ids in, probabilities out, same numbers as Keras under the LiteRT interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlpipe.data.text import TextPreprocessing, read_vocabulary
from dlpipe.data.wordpiece import WordPieceTokenizer
from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts, tflite_metadata
from dlpipe.models.export import ExportRequest, export
from dlpipe.models.tasks import get_task
from dlpipe.models.text_classifiers import make_vectorizer, minilm_classifier, recurrent_classifier, transformer_classifier
from dlpipe.models.text_tokenizers import make_text_encoder

LENGTH = 12
CLASSES = ["negative", "neutral", "positive"]
PREP = TextPreprocessing(max_tokens=64, sequence_length=LENGTH)
TRAIN = [
    "A great movie, truly great!", "terrible plot and awful acting", "I loved it", "worst film ever made",
    "the actors were brilliant and the story moving", "boring, long and dull", "fine", "not good, not bad",
]
# short (mostly padding), unknown words ([UNK] = 1), all unknown, truncated at LENGTH tokens, punctuation and case
TEXTS = [
    "great movie", "zzz qqq great xyzzy", "blorp snarf", "AWFUL, awful... awful!",
    "I loved the brilliant story and the actors were great fun to watch, really",
    "dull", "",
]


def export_text_tflite(model: keras.Model, folder: Path, class_names: list[str], prep: TextPreprocessing,
                       quantize: str = "none") -> Path:
    """The text task's TFLite export through the one export function, as the export stage calls it."""
    fmt = "tflite" if quantize == "none" else f"tflite-{quantize}"
    bundle = artifacts.Bundle("text", class_names, prep, get_task("text").side_files_for(model, prep))
    return export(model, fmt, folder, ExportRequest(bundle))


def embedded(path: Path, name: str) -> bytes | None:
    return artifacts.embedded_in_tflite(path).get(name)


@pytest.fixture(scope="module")
def vectorizer() -> keras.layers.TextVectorization:
    return make_vectorizer(TRAIN, PREP.max_tokens, LENGTH, PREP.standardize)


def _spread(model: keras.Model, seed: int) -> keras.Model:
    """Random weights with some spread, so the probabilities differ between texts (not all ~1/3)."""
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.4, weight.shape).astype("float32"))
    return model


def _build(name: str, vectorizer) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "transformer":
        model = transformer_classifier(vectorizer, len(CLASSES), LENGTH, embed_dim=16, num_heads=2, ff_dim=16,
                                       num_layers=2, dropout=0.1)
    else:
        kind, layers = name.split("-")
        model = recurrent_classifier(vectorizer, len(CLASSES), kind, embedding_dim=16, units=16,
                                     num_layers=int(layers), dropout=0.3)
    return _spread(model, seed=len(name))


def _run_tflite(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """LiteRT with the inputs fed by name at the batch size of `feeds` (the file's batch is dynamic)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inputs = {detail["name"]: detail for detail in interpreter.get_input_details()}
    assert set(inputs) == set(feeds)
    batch = len(next(iter(feeds.values())))
    for name, detail in inputs.items():
        assert list(detail["shape_signature"]) == [-1, feeds[name].shape[1]] and detail["dtype"] == np.int32
        interpreter.resize_tensor_input(detail["index"], [batch, feeds[name].shape[1]])
    interpreter.allocate_tensors()
    for name, detail in inputs.items():
        interpreter.set_tensor(detail["index"], feeds[name])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("name", ["lstm-1", "lstm-2", "gru-1", "gru-2", "bilstm-1", "bilstm-2", "transformer"])
def test_float_tflite_matches_keras(name, vectorizer, tmp_path):
    model = _build(name, vectorizer)
    texts = TEXTS  # "" included: a text with no token at all must give finite probabilities
    path = export_text_tflite(model, tmp_path, CLASSES, PREP)

    # the Python encoder, built from the exported vocabulary file, gives the in-model vectorizer's ids
    feeds = make_text_encoder(PREP, tmp_path / "vocabulary.txt")(texts)
    np.testing.assert_array_equal(feeds["token_ids"], np.asarray(vectorizer(tf.constant(texts))))
    assert (feeds["token_ids"] == 0).any() and (feeds["token_ids"] == 1).any()  # padding and [UNK] are exercised

    expected = model.predict(tf.constant(texts), verbose=0)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(_run_tflite(path, feeds), expected, rtol=0, atol=1e-4)
    one = {key: value[3:4] for key, value in feeds.items()}  # batch size 1 from the same file
    np.testing.assert_allclose(_run_tflite(path, one), expected[3:4], rtol=0, atol=1e-4)


def test_labels_vocabulary_and_preprocessing_travel_with_the_file(vectorizer, tmp_path):
    model = _build("gru-1", vectorizer)
    path = export_text_tflite(model, tmp_path / "out", CLASSES, PREP)
    vocabulary = [str(token) for token in vectorizer.get_vocabulary()]
    assert vocabulary[:2] == ["", "[UNK]"]

    assert embedded(path, artifacts.EMBEDDED_LABELS).decode("utf-8").splitlines() == CLASSES
    assert embedded(path, artifacts.EMBEDDED_FILE_PREFIX + "vocabulary.txt").decode("utf-8").split("\n")[:-1] == vocabulary
    inside = json.loads(embedded(path, artifacts.EMBEDDED_PREPROCESSING))
    assert inside == {"task": "text", **PREP.to_dict()}
    assert embedded(path, "no_such_buffer") is None

    folder = path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["artifacts.json", "labels.txt", "model.tflite",
                                                        "preprocessing.json", "vocabulary.txt"]
    side = artifacts.read_side_files(path)
    assert side.class_names == CLASSES and side.preprocessing == inside and side.task == "text"
    assert read_vocabulary(folder / "vocabulary.txt") == vocabulary
    assert TextPreprocessing.from_dict(inside) == PREP
    # the standard metadata MediaPipe reads: labels, a RegexTokenizer with its vocabulary, preprocessing.json
    assert tflite_metadata.read_labels(path) == CLASSES
    unit = tflite_metadata.read_metadata(path)["subgraphMetadata"][0]["inputTensorMetadata"][0]["processUnits"][0]
    assert unit["optionsType"] == "RegexTokenizerOptions"
    packed = tflite_metadata.associated_files(path)
    assert b"<UNKNOWN> 1\n" in packed["vocab.txt"] and json.loads(packed["preprocessing.json"]) == inside


def test_standardize_without_a_regex_equivalent_keeps_dlpipe_metadata_only(tmp_path):
    prep = TextPreprocessing(max_tokens=64, sequence_length=LENGTH, strip_punctuation=False)
    model = _build("gru-1", make_vectorizer(TRAIN, prep.max_tokens, LENGTH, prep.standardize))
    with pytest.warns(UserWarning, match="model.tflite: standardize='lower' has no MediaPipe RegexTokenizer"):
        path = export_text_tflite(model, tmp_path, CLASSES, prep)
    assert tflite_metadata.read_metadata(path) is None
    expected = model.predict(tf.constant(TEXTS), verbose=0)
    from dlpipe.models.runtimes import load_runtime

    np.testing.assert_allclose(load_runtime(path).predict(TEXTS), expected, rtol=0, atol=1e-4)


def test_encoder_reproduces_vectorizer_ids(vectorizer):
    texts = TRAIN + TEXTS + ["Tab\tand\nnewline", "ÉCOLE école", "great " * 30, "   ", "!!!", "fine,fine;fine"]
    expected = np.asarray(vectorizer(tf.constant(texts)))
    vocabulary = vectorizer.get_vocabulary()
    ids = make_text_encoder(PREP, vocabulary)(texts)["token_ids"]
    assert ids.dtype == np.int32 and ids.shape == (len(texts), LENGTH)
    np.testing.assert_array_equal(ids, expected)
    assert make_text_encoder(PREP, vocabulary)([])["token_ids"].shape == (0, LENGTH)
    with pytest.raises(DlpipeError, match="starts with"):
        make_text_encoder(PREP, vocabulary[2:])


def test_quantized_tflite_agree_on_top1(vectorizer, tmp_path):
    """float16 and dynamic-range files give Keras' top class (max abs differences are printed with -s)."""
    for name in ("bilstm-2", "transformer"):
        model = _build(name, vectorizer)
        # "" gives the softmax of the head's bias alone, where two classes can tie: top-1 is compared on real texts
        texts = [text for text in TEXTS if text]
        expected = model.predict(tf.constant(texts), verbose=0)
        feeds = make_text_encoder(PREP, vectorizer.get_vocabulary())(texts)
        for quantize in ("float16", "dynamic"):
            path = export_text_tflite(model, tmp_path / name, CLASSES, PREP, quantize)
            probabilities = _run_tflite(path, feeds)
            print(f"{name} {quantize}: {path.stat().st_size} bytes, max abs diff "
                  f"{np.abs(probabilities - expected).max():.2e}")
            np.testing.assert_array_equal(probabilities.argmax(1), expected.argmax(1))
            np.testing.assert_allclose(probabilities, expected, rtol=0, atol=2e-2)
            assert artifacts.read_side_files(path).class_names == CLASSES


def test_int8_and_unknown_quantisations_are_refused(vectorizer, tmp_path):
    model = _build("lstm-1", vectorizer)
    with pytest.raises(DlpipeError, match="not available for text models.*tflite-dynamic"):
        export_text_tflite(model, tmp_path, CLASSES, PREP, "int8")
    with pytest.raises(DlpipeError, match="unknown format"):
        export_text_tflite(model, tmp_path, CLASSES, PREP, "int4")
    with pytest.raises(DlpipeError, match="disagrees with preprocessing"):
        export_text_tflite(model, tmp_path, CLASSES, TextPreprocessing(sequence_length=LENGTH + 1))
    assert not [path for path in tmp_path.iterdir() if path.suffix == ".tflite" or path.name.startswith(".")]


def test_reloaded_keras_file_exports(vectorizer, tmp_path):
    """`dlpipe export` converts a model.keras loaded from a run folder, not the in-memory model."""
    model = _build("bilstm-1", vectorizer)
    loaded = artifacts.load_keras(artifacts.save_keras(model, tmp_path / "model.keras"))
    path = export_text_tflite(loaded, tmp_path / "tflite", CLASSES, PREP)
    feeds = make_text_encoder(PREP, tmp_path / "tflite" / "vocabulary.txt")(TEXTS)
    np.testing.assert_allclose(_run_tflite(path, feeds), model.predict(tf.constant(TEXTS), verbose=0), rtol=0, atol=1e-4)


def _wordpiece_vocab(path: Path) -> Path:
    words = ["the", "movie", "was", "great", "awful", "i", "loved", "it", "plot", "##s", "##ing", "act", ",", "!", "."]
    path.write_text("".join(f"{token}\n" for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]),
                    encoding="utf-8")
    return path


# MiniLM's layers at a fraction of its width and depth: the export path is the same, the conversion seconds not
SMALL_MINILM = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}


def test_minilm_float_tflite_matches_keras(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    prep = TextPreprocessing(sequence_length=16, tokenizer="wordpiece", vocab_file=str(_wordpiece_vocab(run / "vocab.txt")))
    keras.utils.set_random_seed(0)
    model = minilm_classifier(2, prep.sequence_length, weights=None, config=SMALL_MINILM)
    texts = ["The movie was great!", "I loved it, loved it, loved it", "awful acting plots", "unknown zzz words",
             "the " * 20, ""]
    path = export_text_tflite(model, tmp_path / "tflite", ["negative", "positive"], prep)

    assert sorted(p.name for p in path.parent.iterdir()) == ["artifacts.json", "labels.txt", "model.tflite",
                                                             "preprocessing.json", "vocab.txt"]
    assert (path.parent / "vocab.txt").read_bytes() == (run / "vocab.txt").read_bytes()
    assert artifacts.read_side_files(path).class_names == ["negative", "positive"]
    assert embedded(path, artifacts.EMBEDDED_FILE_PREFIX + "vocab.txt") == (run / "vocab.txt").read_bytes()

    feeds = make_text_encoder(prep, path.parent / "vocab.txt")(texts)
    reference = WordPieceTokenizer.from_vocab_file(run / "vocab.txt").encode(texts, max_length=16)
    assert set(feeds) == {"input_ids", "attention_mask"}
    for key in feeds:
        np.testing.assert_array_equal(feeds[key], reference[key])
    assert (feeds["input_ids"] == 1).any() and (feeds["attention_mask"] == 0).any()
    expected = model.predict(feeds, verbose=0)
    assert np.ptp(expected[:, 1]) > 1e-3  # the texts get different answers: parity can fail
    # MediaPipe's BERT convention: ids, mask and segment_ids (one segment: zeros, which MiniLM ignores)
    bert_feeds = {"ids": feeds["input_ids"], "mask": feeds["attention_mask"],
                  "segment_ids": np.zeros_like(feeds["input_ids"])}
    np.testing.assert_allclose(_run_tflite(path, bert_feeds), expected, rtol=0, atol=1e-4)
    units = tflite_metadata.read_metadata(path)["subgraphMetadata"][0]["inputProcessUnits"]
    assert units[0]["optionsType"] == "BertTokenizerOptions"
    assert tflite_metadata.associated_files(path)["vocab.txt"] == (run / "vocab.txt").read_bytes()
    # dlpipe's runtime maps ids/mask/segment_ids back onto its encoder's arrays
    from dlpipe.models.runtimes import load_runtime

    np.testing.assert_allclose(load_runtime(path).predict(texts), expected, rtol=0, atol=1e-4)


# How far each format's accuracy on held-out labelled sentences may trail the Keras model's
TEXT_ACCURACY_SLACK = {"savedmodel": 0.0, "model.tflite": 0.0, "model_float16.tflite": 0.02,
                       "model_dynamic.tflite": 0.02}


def test_every_text_export_scores_the_keras_models_accuracy(tmp_path):
    """A trained GRU's exports, each evaluated by `dlpipe evaluate` on sentences it never saw."""
    from click.testing import CliRunner

    from conftest import TINY_TEXT_SETS, write_sentences
    from dlpipe.pipelines import api
    from dlpipe.pipelines.cli import main

    run = tmp_path / "run"
    api.run("sentiment", data=str(write_sentences(tmp_path / "train.txt", 160, seed=3)), out=run,
            sets=[*TINY_TEXT_SETS, "export.formats=[keras,savedmodel,tflite,tflite-float16,tflite-dynamic]"],
            echo=lambda _: None)
    held_out = write_sentences(tmp_path / "held_out.txt", 200, seed=11)

    def accuracy(artifact: Path) -> float:
        out = tmp_path / f"metrics-{artifact.name}.json"
        result = CliRunner().invoke(main, ["evaluate", str(artifact), "--data", str(held_out), "--out", str(out)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        metrics = json.loads(out.read_text())
        assert metrics["count"] == 200
        return metrics["accuracy"]

    keras_accuracy = accuracy(run / "model.keras")
    assert keras_accuracy >= 0.8  # the sentences' label follows from their words
    for name, slack in TEXT_ACCURACY_SLACK.items():
        assert accuracy(run / name) >= keras_accuracy - slack, name
