"""One inference SavedModel per Keras model for all of its .tflite files.

`tf.lite.TFLiteConverter.from_keras_model` writes the model to a temporary SavedModel, loads it back and converts
that, once per file: a run exporting float32 and int8, or `dlpipe export --quantize auto` converting five
candidates, wrote and reloaded the same model five times (about 4 s each for EfficientNet-Lite0, most of a
conversion). Inside `one_source_per_model()`, `tflite_converter(model)` writes that SavedModel once, the way
TensorFlow's Keras path does (an inference endpoint with the model's input signature), and each conversion
starts from it with `from_saved_model`: the same graph, tensors and outputs (measured: float32, float16, dynamic
and int8 files identical but for one byte, the conversion metadata's note of where the model came from).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import shutil
import tempfile
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

# (id(model), wrap) -> (model, SavedModel folder); None outside one_source_per_model()
_SOURCES: contextvars.ContextVar[dict[tuple[int, Any], tuple[Any, str]] | None] = contextvars.ContextVar(
    "dlpipe_tflite_sources", default=None)


@contextlib.contextmanager
def one_source_per_model() -> Iterator[None]:
    """Within this block each Keras model's .tflite files convert from one SavedModel, deleted at the end.

    The model's weights must not change inside the block (an export does not change them)."""
    sources: dict[tuple[int, Any], tuple[Any, str]] = {}
    token = _SOURCES.set(sources)
    try:
        yield
    finally:
        _SOURCES.reset(token)
        for _, folder in sources.values():
            shutil.rmtree(folder, ignore_errors=True)


def tflite_converter(model: keras.Model, wrap: Callable[[keras.Model], keras.Model] | None = None
                     ) -> tf.lite.TFLiteConverter:
    """A converter for `model` (or for `wrap(model)`, e.g. a detector answering MediaPipe's outputs):
    `from_keras_model`, or inside `one_source_per_model()` from the SavedModel its files share."""
    sources = _SOURCES.get()
    if sources is None:
        return tf.lite.TFLiteConverter.from_keras_model(wrap(model) if wrap else model)
    key = (id(model), wrap)  # the entry holds the model, so its id stays its own until the block ends
    entry = sources.get(key)
    if entry is None:
        folder = tempfile.mkdtemp(prefix="dlpipe-tflite-")
        converted = wrap(model) if wrap else model
        try:
            _write_inference_savedmodel(converted, folder)
        except Exception:  # noqa: BLE001  (TensorFlow's own Keras path falls back the same way)
            shutil.rmtree(folder, ignore_errors=True)
            return tf.lite.TFLiteConverter.from_keras_model(converted)
        entry = sources[key] = (model, folder)
    return tf.lite.TFLiteConverter.from_saved_model(entry[1])


def _write_inference_savedmodel(model: keras.Model, folder: str) -> None:
    """What `TFLiteKerasModelConverterV2._convert_keras_to_saved_model` writes for a Keras 3 model: its call with
    training=False as the default signature, inputs named as the model's."""
    from dlpipe.models.export.converters import export_archive

    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError("only a functional or sequential Keras model with known inputs")
    signature = tf.nest.map_structure(lambda x: tf.TensorSpec(x.shape, dtype=x.dtype, name=x.name), model.inputs)
    if isinstance(signature, list) and len(signature) > 1:
        signature = [signature]
    archive = export_archive(model)  # each weight written once (converters.export_archive)
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False), signature)
    archive.write_out(folder, verbose=False)
