"""Exporters of the points task: .keras, a SavedModel and TFLite, each taking float32 [N, 2] points.

A SavedModel's `serving_default` takes `points` and returns `probabilities`; a .tflite carries dlpipe's side
files inside. Full-integer int8 is refused (a handful of float coordinates gains nothing from it), and so is
the browser page (MediaPipe's classifiers take images or text; `dlpipe playground` is the points' page).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import convert, export_archive, quantization_of, write_keras
from dlpipe.models.export.tflite_source import tflite_converter

TASK = "points"

register(TASK, "keras")(write_keras)
refuse(TASK, "tflite-int8", "a points model is a few thousand float weights; use tflite, tflite-float16 or tflite-dynamic")
refuse(TASK, "onnx", "no ONNX exporter for points models yet: export tflite or savedmodel")
refuse(TASK, "web", "the browser page runs MediaPipe's classifiers on images or text; dlpipe playground is the page for points")


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (points: float32[N, 2]) -> probabilities float32[N, classes]."""

    def classify(points: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(points, training=False)}

    archive = export_archive(model)
    archive.add_endpoint("serving_default", classify, [tf.TensorSpec([None, 2], tf.float32, name="points")])
    archive.write_out(str(target), verbose=False)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """A .tflite taking points, dlpipe's side files embedded."""
    flatbuffer = convert(tflite_converter(model), quantization_of(fmt))
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle))
