"""The ids-in inference twin of a text classifier that TFLite converts: builtin ops only.

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

Why WordPiece twins take ids, mask and segment_ids: that is MediaPipe's BERT
convention (its TextClassifier finds the three int32 inputs by these metadata
names). The twin maps them onto the model's input_ids and attention_mask, and
onto token_type_ids when the model takes them; MiniLM as dlpipe builds it
fixes the token types to 0, so there segment_ids is an input it ignores.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import DlpipeError
from dlpipe.models.export.converters import convert

TOKEN_IDS = "token_ids"  # the input of a "vectorize" model's .tflite
WORDPIECE_INPUTS = ("input_ids", "attention_mask")
# the .tflite inputs of a WordPiece model (MediaPipe's BERT names) -> the Keras model's inputs
BERT_TFLITE_INPUTS = {"ids": "input_ids", "mask": "attention_mask", "segment_ids": "token_type_ids"}
_RECURRENT = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.Bidirectional)


def inference_model(model: keras.Model, prep: TextPreprocessing) -> tuple[keras.Model, tuple[str, ...]]:
    """The ids-in model that gets converted, and its input names in call order.

    "vectorize" models are cut after the TextVectorization layer; their
    recurrent layers are rebuilt without dropout and unrolled (see the module
    docstring), all other layers are shared with `model`. WordPiece models
    already take ids: MiniLM is used as it is, a recurrent one gets the same
    unrolled twin.
    """
    if prep.tokenizer == "wordpiece":
        names = tuple(tensor.name for tensor in model.inputs)
        if not set(WORDPIECE_INPUTS) <= set(names) <= set(BERT_TFLITE_INPUTS.values()):
            raise DlpipeError(f"export: a wordpiece model must take inputs {list(WORDPIECE_INPUTS)}, not {list(names)}")
        lengths = {tensor.shape[1] for tensor in model.inputs} - {None}
        if lengths - {prep.sequence_length}:
            raise DlpipeError(f"export: the model takes sequences of {sorted(lengths)} tokens but preprocessing.json "
                              f"says sequence_length={prep.sequence_length}")
        if not any(isinstance(layer, _RECURRENT) for layer in model.layers):
            return model, tuple(BERT_TFLITE_INPUTS)
        return _with_unrolled_recurrence(model), tuple(BERT_TFLITE_INPUTS)
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
    ids = keras.Input((prep.sequence_length,), dtype="int32", name=TOKEN_IDS)
    return _with_unrolled_recurrence(_after(model, vectorize), ids), (TOKEN_IDS,)


def _with_unrolled_recurrence(model: keras.Model, input_tensors: Any = None) -> keras.Model:
    """`model` with its recurrent layers rebuilt unrolled and without dropout (same weights); other layers shared."""
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

    twin_model = keras.models.clone_model(model, input_tensors=input_tensors, clone_function=clone)
    for layer, twin in rebuilt:
        twin.set_weights(layer.get_weights())
    return twin_model


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


def convert_twin(twin: keras.Model, input_names: tuple[str, ...], sequence_length: int, quantize: str,
                 id_remap: dict[int, int] | None = None) -> bytes:
    """The ids-in twin as TFLite flatbuffer bytes, builtin ops only, any batch size.

    id_remap: WordPiece ids to replace before the model (`dlpipe.data.wordpiece.bert_framing_remap`: MediaPipe's
    [CLS]/[SEP] -> MPNet's <s>/</s>); dlpipe's own ids already use the model's and pass unchanged.
    """
    specs = [tf.TensorSpec([None, sequence_length], tf.int32, name=name) for name in input_names]

    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if len(inputs) == 1:
            return {"probabilities": twin(inputs[0], training=False)}
        taken = {tensor.name for tensor in twin.inputs}
        features = {BERT_TFLITE_INPUTS.get(name, name): tensor for name, tensor in zip(input_names, inputs)}
        for theirs, ours in (id_remap or {}).items():
            ids = features["input_ids"]
            features["input_ids"] = tf.where(ids == theirs, tf.constant(ours, ids.dtype), ids)
        # an input the model ignores (segment_ids) stays an input of the converted graph
        return {"probabilities": twin({name: tensor for name, tensor in features.items() if name in taken},
                                      training=False)}

    concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    # Frozen, and no trackable object given: with one, the converter keeps VAR_HANDLE/READ_VARIABLE
    # ops, which LiteRT runs uninitialised (NaN outputs).
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return convert(converter, quantize)
