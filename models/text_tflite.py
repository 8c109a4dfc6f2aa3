"""TFLite export of the text classifiers: token ids in, probabilities out, builtin ops only.

Why ids and not strings: LiteRT has no string ops without the Flex delegate, so
the `TextVectorization` layer (or the WordPiece tokenizer) stays outside the
file, as in TFLite Model Maker's text classifiers. The vocabulary travels with
the model instead: inside the .tflite as a metadata buffer and as a file beside
it; `dlpipe.data.text.make_text_encoder` turns strings into the exact ids.

Why the recurrent models are not converted as trained: Keras 3's masked RNN
loop is a `while_loop` over TensorLists that the converter cannot lower to
builtins with a dynamic batch (and with a fixed batch LiteRT fails on
READ_VARIABLE inside WHILE); RNNs with dropout also draw a dropout mask at
inference, which updates a seed variable and keeps variables in the graph.
So the converted graph is an inference twin: the same layers and weights,
recurrent layers rebuilt with dropout 0 and `unroll=True` over the fixed
sequence length (plain FULLY_CONNECTED/LOGISTIC/TANH/SELECT ops, any batch
size), with every variable frozen to a constant. It matches Keras to float32
round-off, padding and [UNK] included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from dlpipe import atomic
from dlpipe.data.text import TextPreprocessing, read_vocabulary
from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts
from dlpipe.models.export_formats import LABELS_METADATA, QUANTIZATIONS, with_metadata

VOCABULARY_FILE = "vocabulary.txt"
VOCABULARY_METADATA = "dlpipe_vocabulary"
PREPROCESSING_METADATA = "dlpipe_preprocessing"
TOKEN_IDS = "token_ids"  # the input of a "vectorize" model's .tflite
WORDPIECE_INPUTS = ("input_ids", "attention_mask")
_RECURRENT = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.Bidirectional)


def export_text_tflite(model: keras.Model, path: str | Path, class_names: list[str], prep: TextPreprocessing,
                       quantize: str = "none", representative_texts: Sequence[str] | None = None) -> Path:
    """Write a .tflite text classifier (int32 ids [N, L] in, probabilities out) and what it needs beside it.

    Beside `path`: labels.txt, preprocessing.json and the vocabulary (vocabulary.txt,
    or the WordPiece vocab file under its own name); labels, vocabulary and
    preprocessing are also embedded in the file as metadata buffers. quantize:
    "none" (float32), "float16" (half-size weights) or "dynamic" (int8 weights of
    tensors with at least 1024 elements, float compute). "int8" (full-integer)
    raises DlpipeError: the recurrent models convert but fail in LiteRT's
    default (XNNPACK) interpreter and the transformer fails in a quantised DIV,
    so it stays for image models. `representative_texts` keeps the signature of
    the image exporter and is unused while int8 is refused.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize == "int8":
        raise DlpipeError("export: full-integer int8 TFLite is for image models; text models do not run under it "
                          "in LiteRT; use tflite-dynamic (int8 weights, about 4x smaller) or tflite-float16")
    twin, input_names = inference_model(model, prep)
    vocabulary = _vocabulary(model, prep)
    path = Path(path)
    metadata = {
        LABELS_METADATA: "".join(f"{name}\n" for name in class_names).encode("utf-8"),
        VOCABULARY_METADATA: "".join(f"{token}\n" for token in vocabulary).encode("utf-8"),
        PREPROCESSING_METADATA: json.dumps({"kind": "text", **prep.to_dict()}).encode("utf-8"),
    }
    flatbuffer = with_metadata(_convert(twin, input_names, prep.sequence_length, quantize), metadata)
    # what the model needs first, the model last: a .tflite on disk always has its files beside it
    artifacts.write_labels(path.parent, class_names)
    artifacts.write_preprocessing(path.parent, {"kind": "text", **prep.to_dict()})
    if prep.tokenizer == "wordpiece":
        artifacts.copy_beside(prep.vocab_file, path.parent)
    else:
        write_vocabulary(path.parent / VOCABULARY_FILE, vocabulary)
    with atomic.replacing_file(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path


def inference_model(model: keras.Model, prep: TextPreprocessing) -> tuple[keras.Model, tuple[str, ...]]:
    """The ids-in model that gets converted, and its input names in call order.

    "vectorize" models are cut after the TextVectorization layer; their
    recurrent layers are rebuilt without dropout and unrolled (see the module
    docstring), all other layers are shared with `model`. WordPiece models
    already take ids and are used as they are.
    """
    if prep.tokenizer == "wordpiece":
        names = tuple(tensor.name for tensor in model.inputs)
        if set(names) != set(WORDPIECE_INPUTS):
            raise DlpipeError(f"export: a wordpiece model must take inputs {list(WORDPIECE_INPUTS)}, not {list(names)}")
        lengths = {tensor.shape[1] for tensor in model.inputs} - {None}
        if lengths - {prep.sequence_length}:
            raise DlpipeError(f"export: the model takes sequences of {sorted(lengths)} tokens but preprocessing.json "
                              f"says sequence_length={prep.sequence_length}")
        return model, WORDPIECE_INPUTS
    try:
        vectorize = model.get_layer("vectorize")
    except ValueError:
        raise DlpipeError(f"export: text model '{model.name}' has no 'vectorize' layer; "
                          "only dlpipe text classifiers export to TFLite") from None
    settings = vectorize.get_config()
    if (settings.get("output_sequence_length"), settings.get("standardize")) != (prep.sequence_length, prep.standardize):
        # make_text_encoder rebuilds the vectorizer from `prep`: it must give the model's own ids
        raise DlpipeError(f"export: the model's vectorize layer (sequence length {settings.get('output_sequence_length')},"
                          f" standardize {settings.get('standardize')!r}) disagrees with preprocessing.json "
                          f"(sequence_length={prep.sequence_length}, standardize {prep.standardize!r})")
    after = _after(model, vectorize)
    ids = keras.Input((prep.sequence_length,), dtype="int32", name=TOKEN_IDS)
    rebuilt: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if not isinstance(layer, _RECURRENT):
            return layer
        twin = layer.__class__.from_config(_unrolled(layer.get_config()))
        if isinstance(twin, keras.layers.Bidirectional):
            # Keras' unrolled loop zeroes masked outputs with the mask in forward order even when it
            # runs backwards, so real steps of the backward half get zeroed. Outputs at masked steps
            # are ignored downstream (the mask travels on), so skipping the zeroing is exact.
            twin.backward_layer.zero_output_for_mask = False
        rebuilt.append((layer, twin))
        return twin

    twin_model = keras.models.clone_model(after, input_tensors=ids, clone_function=clone)
    for layer, twin in rebuilt:
        twin.set_weights(layer.get_weights())
    return twin_model, (TOKEN_IDS,)


def _after(model: keras.Model, vectorize: keras.layers.Layer) -> keras.Model:
    """The part of `model` after `vectorize`, as a model taking its int64 ids.

    A vectorizer shared by several models has one output per call; the one
    connected to this model's output is the one to cut at.
    """
    for node in vectorize._inbound_nodes:
        try:
            return keras.Model(node.outputs[0], model.output)
        except ValueError:
            continue
    raise DlpipeError(f"export: cannot cut model '{model.name}' after its 'vectorize' layer")


def _unrolled(config: Any) -> Any:
    """A recurrent layer's config (nested for Bidirectional) with dropout off and the loop unrolled."""
    if isinstance(config, dict):
        out = {key: _unrolled(value) for key, value in config.items()}
        if "unroll" in out:
            out.update(unroll=True, dropout=0.0, recurrent_dropout=0.0)
        return out
    if isinstance(config, list):
        return [_unrolled(value) for value in config]
    return config


def _convert(twin: keras.Model, input_names: tuple[str, ...], sequence_length: int, quantize: str) -> bytes:
    specs = [tf.TensorSpec([None, sequence_length], tf.int32, name=name) for name in input_names]

    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        features = inputs[0] if len(inputs) == 1 else dict(zip(input_names, inputs))
        return {"probabilities": twin(features, training=False)}

    concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    # Frozen, and no trackable object given: with one, the converter keeps VAR_HANDLE/READ_VARIABLE
    # ops, which LiteRT runs uninitialised (NaN outputs).
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _vocabulary(model: keras.Model, prep: TextPreprocessing) -> list[str]:
    if prep.tokenizer == "wordpiece":
        if not prep.vocab_file or not Path(prep.vocab_file).is_file():
            raise DlpipeError(f"export: the WordPiece vocabulary {prep.vocab_file!r} is missing; "
                              "it belongs beside the model in the run folder")
        return read_vocabulary(prep.vocab_file)
    return [str(token) for token in model.get_layer("vectorize").get_vocabulary()]


def write_vocabulary(path: str | Path, tokens: Sequence[str]) -> None:
    """One token a line, line number = id (line 1 is "" for padding, line 2 "[UNK]" for TextVectorization)."""
    atomic.write_text(path, "".join(f"{token}\n" for token in tokens))
