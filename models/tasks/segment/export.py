"""Exporters of the segment task: a SavedModel that takes encoded image bytes, and TFLite that takes pixels.

The SavedModel's `serving_default` takes encoded JPEG/PNG/GIF/BMP bytes (`image_bytes`,
string[N]), decodes and stretches them in the graph as dlpipe does, and returns `probabilities`
(N, S, S, C), `mask` (N, S, S) int32 class indices and `class_fractions` (N, C), all at the
model's resolution (S x S: resize the mask to the photo's size, as `dlpipe predict` does);
`serving_pixels` takes float32 pixels [N, S, S, 3] in [0, 255]. TFLite files take pixels
(float32, or uint8 for full-integer int8) and carry dlpipe's side files inside; MediaPipe's
ImageSegmenter metadata is not written (its output convention differs).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import convert, export_archive, quantization_of, write_keras
from dlpipe.models.export.onnx import pixels_exporter
from dlpipe.models.export.tflite_source import tflite_converter
from dlpipe.models.tasks.image.export import checked_pixels, representative_images

TASK = "segment"

register(TASK, "keras")(write_keras)
register(TASK, "onnx")(pixels_exporter)  # scaled pixels in, as the float32 .tflite
refuse(TASK, "web", "the browser page runs MediaPipe's ImageClassifier; segmentation models are not supported there")


def _outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
    mask = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    classes = tf.shape(probabilities)[-1]
    fractions = tf.reduce_mean(tf.one_hot(mask, classes), axis=[1, 2])
    return {"probabilities": probabilities, "mask": mask, "class_fractions": fractions}


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (image_bytes: string[N]) and `serving_pixels` (pixels: float32[N, S, S, 3])."""
    prep = request.bundle.preprocessing
    size = prep.image_size
    scale = float(prep.pixel_scale)

    def from_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return _outputs(model(pixels * scale, training=False))

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return from_pixels(checked_pixels(image_bytes, prep))

    archive = export_archive(model)
    archive.add_endpoint("serving_default", from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("serving_pixels", from_pixels, [tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")])
    archive.write_out(str(target), verbose=False)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """A .tflite (float32, float16, dynamic-range or full-integer uint8 in/out) with dlpipe's side files embedded."""
    quantize = quantization_of(fmt)
    representative = None
    prep = request.bundle.preprocessing
    if quantize == "int8":
        if not request.calibration:
            raise DlpipeError("export: int8 needs training images for calibration; the run's load.path has none")
        if prep.pixel_scale != 1.0:
            raise DlpipeError("export: int8 takes raw pixel bytes; this model's pixel_scale is not 1")
        representative = representative_images(list(request.calibration), prep)
    flatbuffer = convert(tflite_converter(model), quantize, representative)
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle))
