"""The ids-in inference twin of a text classifier that TFLite converts: builtin ops only.

Why ids and not strings: LiteRT has no string ops without the Flex delegate, so
the `TextVectorization` layer (or the WordPiece tokenizer) stays outside the
file, as in TFLite Model Maker's text classifiers. The vocabulary travels with
the model instead: inside the .tflite as a metadata buffer and as a file beside
it; the tokenizer's encoder (`dlpipe.models.text_tokenizers`) turns strings into the exact ids.

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
from dlpipe.models.export.converters import convert
from dlpipe.models.text_tokenizers import tokenizer_for

_RECURRENT = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.Bidirectional)


def inference_model(model: keras.Model, prep: TextPreprocessing) -> tuple[keras.Model, dict[str, str | None]]:
    """The ids-in model that gets converted, and its .tflite input names (in call order) -> the Keras inputs.

    The tokenizer says where the ids start (`words`: after the TextVectorization layer, on a new int32 input;
    `wordpiece`: the model as it is); recurrent layers are then rebuilt without dropout and unrolled (see the
    module docstring), all other layers are shared with `model`.
    """
    inputs = tokenizer_for(prep).tflite_inputs(model, prep)
    if inputs.new_input is None and not any(isinstance(layer, _RECURRENT) for layer in inputs.model.layers):
        return inputs.model, dict(inputs.names)
    return _with_unrolled_recurrence(inputs.model, inputs.new_input), dict(inputs.names)


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


def convert_twin(twin: keras.Model, input_names: dict[str, str | None], sequence_length: int, quantize: str,
                 id_remap: dict[int, int] | None = None) -> bytes:
    """The ids-in twin as TFLite flatbuffer bytes, builtin ops only, any batch size.

    input_names: the .tflite's input names -> the twin's inputs (None: an input the model ignores, kept as an
    input of the graph, e.g. segment_ids). id_remap: token ids to replace before the model (the tokenizer's
    `tflite_id_remap`: MediaPipe's [CLS]/[SEP] -> MPNet's <s>/</s>); dlpipe's own ids pass unchanged.
    """
    specs = [tf.TensorSpec([None, sequence_length], tf.int32, name=name) for name in input_names]

    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if len(inputs) == 1:
            return {"probabilities": twin(_remapped(inputs[0], id_remap), training=False)}
        features = {ours: tensor for ours, tensor in zip(input_names.values(), inputs) if ours is not None}
        features["input_ids"] = _remapped(features["input_ids"], id_remap)
        return {"probabilities": twin(features, training=False)}

    concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    # Frozen, and no trackable object given: with one, the converter keeps VAR_HANDLE/READ_VARIABLE
    # ops, which LiteRT runs uninitialised (NaN outputs).
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return convert(converter, quantize)


def _remapped(ids: tf.Tensor, id_remap: dict[int, int] | None) -> tf.Tensor:
    for theirs, ours in (id_remap or {}).items():
        ids = tf.where(ids == theirs, tf.constant(ours, ids.dtype), ids)
    return ids
