"""Deployable files for an image classifier: SavedModel with a raw-bytes signature, and TFLite.

Both take what a deployment has: the SavedModel's `serving_default` takes
encoded JPEG/PNG/GIF/BMP bytes and runs dlpipe's own preprocessing in the
graph; `serving_pixels` and TFLite take preprocessed pixels (float32 in
[0, 255], or uint8 for the int8 model). Labels travel as labels.txt beside
every file (and in the SavedModel graph). Every write is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from dlpipe import atomic
from dlpipe.data.preprocess import ImagePreprocessing, known_image_format, preprocess_bytes
from dlpipe.errors import DataError
from dlpipe.models import artifacts

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def export_image_savedmodel(model: keras.Model, folder: str | Path, class_names: list[str],
                            prep: ImagePreprocessing) -> Path:
    """SavedModel with `serving_default` (image_bytes: string[N]) and `serving_pixels` (float32[N,S,S,3])."""
    if prep.filter != "none":
        raise DataError(str(folder), f"preprocess.filter={prep.filter} runs OpenCV outside TensorFlow and cannot "
                                     "be saved in the graph; export with filter none, or preprocess on the client")
    size = prep.image_size

    def outputs(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return labelled_outputs(model(pixels, training=False), class_names)

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        # name the bad elements of a batch: the decoder's own error does not say which one failed
        known = known_image_format(image_bytes)
        check = tf.debugging.Assert(tf.reduce_all(known), ["image_bytes: not a JPEG, PNG, GIF or BMP image at index",
                                                           tf.where(tf.logical_not(known))[:, 0]])
        with tf.control_dependencies([check]):
            pixels = tf.map_fn(lambda data: preprocess_bytes(data, prep), image_bytes,
                               fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return outputs(pixels)

    archive = artifacts.export_archive(model)
    # TF Serving's REST API base64-decodes inputs whose name ends in "_bytes"
    archive.add_endpoint("serving_default", from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("serving_pixels", outputs, [tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")])
    folder = Path(folder)
    with atomic.replacing_dir(folder) as tmp:
        archive.write_out(str(tmp), verbose=False)
        artifacts.write_labels(tmp, class_names)
        artifacts.write_preprocessing(tmp, {"kind": "image", **prep.to_dict()})
    return folder


def labelled_outputs(probabilities: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
    """What every dlpipe SavedModel signature returns: the probabilities, the best label and its score."""
    best = tf.argmax(probabilities, axis=1)
    return {"probabilities": probabilities, "label": tf.gather(tf.constant(class_names), best),
            "score": tf.reduce_max(probabilities, axis=1)}


def export_image_tflite(model: keras.Model, path: str | Path, class_names: list[str], prep: ImagePreprocessing,
                        quantize: str = "none", representative: Iterable[np.ndarray] | None = None) -> Path:
    """A .tflite file (float32, float16, dynamic-range or full-integer uint8 in/out) with labels beside it.

    int8 needs `representative`: preprocessed training images (float32, [0, 255]) to calibrate ranges.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantisation needs representative images (a sample of the training data)")
        samples = [np.asarray(image, np.float32)[None] for image in representative]
        if not samples:
            raise DataError(str(path), "no representative images for int8 calibration")
        converter.representative_dataset = _calibration(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in/out; the input scale comes from calibration (about 1 when the images reach 0 and 255):
        # callers quantise with the input tensor's scale and zero point, as models/runtimes.py does
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    flatbuffer = _with_label_metadata(converter.convert(), class_names)
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        tmp.write_bytes(flatbuffer)
    artifacts.write_labels(path.parent, class_names)
    artifacts.write_preprocessing(path.parent, {"kind": "image", **prep.to_dict()})
    return path


LABELS_METADATA = "dlpipe_labels"


def _with_label_metadata(flatbuffer: bytes, class_names: list[str]) -> bytes:
    """Embed labels.txt as a named metadata buffer, so the .tflite file alone still knows its classes."""
    return with_metadata(flatbuffer, {LABELS_METADATA: "".join(f"{name}\n" for name in class_names).encode("utf-8")})


def with_metadata(flatbuffer: bytes, buffers: dict[str, bytes]) -> bytes:
    """Embed named byte buffers (labels, vocabulary, ...) as TFLite metadata; the interpreter ignores them."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    entries = list(model.metadata or [])
    for name, data in buffers.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        entries.append(entry)
    model.metadata = entries
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def metadata_from_tflite(path: str | Path, name: str) -> bytes | None:
    """The metadata buffer `name` embedded by `with_metadata`, or None when the file has none."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for entry in model.metadata or []:
        if entry.name in (name, name.encode()):
            data = model.buffers[entry.buffer].data
            return b"" if data is None else bytes(data)
    return None


def labels_from_tflite(path: str | Path) -> list[str] | None:
    """The class names embedded by `export_image_tflite` / `export_text_tflite`, or None for other files."""
    data = metadata_from_tflite(path, LABELS_METADATA)
    return None if data is None else data.decode("utf-8").splitlines()


def _calibration(samples: list[np.ndarray]) -> Callable[[], Iterable[list[np.ndarray]]]:
    def generate() -> Iterable[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    return generate


def tflite_name(quantize: str) -> str:
    return "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"


def representative_images(paths: list[str], prep: ImagePreprocessing, count: int = 100, seed: int = 0) -> list[np.ndarray]:
    """A seeded sample of training images, preprocessed exactly as in training."""
    from dlpipe.data.preprocess import load_image

    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [load_image(tf.constant(paths[i]), prep).numpy() for i in sorted(chosen)]
