"""Exporters of the gan task: the generator as .keras, a SavedModel and TFLite, each taking latent vectors.

Every format takes the latent vectors (float32 [N, latent_dim]) that the gan task draws from seeds
(`dlpipe.models.tasks.gan.latent_vectors`); a SavedModel's `serving_default` returns `image` (float32
[N, H, W, C] in [-1, 1]) and `pixels` (uint8), a .tflite the image and carries dlpipe's side files
inside. Full-integer int8 is refused (its uint8 input cannot hold a Gaussian latent faithfully), and so
is the browser page (it runs MediaPipe's ImageClassifier).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import convert, export_archive, quantization_of, write_keras
from dlpipe.models.export.tflite_source import tflite_converter

TASK = "gan"

register(TASK, "keras")(write_keras)
refuse(TASK, "tflite-int8", "a generator's input is a Gaussian latent vector, which a uint8 input cannot hold "
                            "faithfully; use tflite, tflite-float16 or tflite-dynamic")
refuse(TASK, "onnx", "no ONNX exporter for generators yet: export tflite or savedmodel")
refuse(TASK, "web", "the browser page runs MediaPipe's ImageClassifier; a generator is not a classifier")


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (latent: float32[N, latent_dim]) -> image in [-1, 1] and uint8 pixels."""
    latent_dim = int(model.input_shape[-1])

    def generate(latent: tf.Tensor) -> dict[str, tf.Tensor]:
        image = model(latent, training=False)
        pixels = tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
        return {"image": image, "pixels": pixels}

    archive = export_archive(model)
    archive.add_endpoint("serving_default", generate, [tf.TensorSpec([None, latent_dim], tf.float32, name="latent")])
    archive.write_out(str(target), verbose=False)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """A .tflite (float32, float16 or dynamic-range weights) taking latent vectors, dlpipe's side files embedded."""
    flatbuffer = convert(tflite_converter(model), quantization_of(fmt))
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle))
