"""Exporters of the multi-label task: the image task's formats, with a 0.5 score threshold in the TFLite metadata.

The model given here already carries its per-label thresholds (`layers.ThresholdShift`), so MediaPipe's
ImageClassifier, reading the metadata's global threshold, answers exactly the labels dlpipe predict does.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from dlpipe.models import tflite_metadata
from dlpipe.models.tasks.image import export as image_exports
from dlpipe.models.export import register
from dlpipe.models.export.converters import write_keras
from dlpipe.models.export.onnx import pixels_exporter
from dlpipe.models.tasks.multilabel import DECISION_THRESHOLD

TASK = "multilabel"
METADATA = functools.partial(tflite_metadata.image_classifier_metadata, mean=[0.0], std=[1.0],
                             score_threshold=DECISION_THRESHOLD)

register(TASK, "keras")(write_keras)
register(TASK, "onnx")(pixels_exporter)  # pixels in, thresholds folded into the scores


def label_set_outputs(scores: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
    """A multi-label SavedModel's named outputs: every label's score, whether it is on, and the names that are.

    `probabilities` (float32[N, labels], thresholds folded in), `on` (bool[N, labels]: score >= 0.5) and `labels`
    (string[N, labels]: the label's name where on, "" where off). No argmax `label`: a photo may show several.
    """
    on = scores >= DECISION_THRESHOLD
    names = tf.broadcast_to(tf.constant(class_names), tf.shape(scores))
    return {"probabilities": scores, "on": on, "labels": tf.where(on, names, tf.constant(""))}


@register(TASK, "savedmodel")
def export_savedmodel(model, target, request, fmt) -> None:
    """The image task's SavedModel (raw image bytes or pixels in), answering label sets (`label_set_outputs`)."""
    image_exports.export_savedmodel(model, target, request, fmt, named=label_set_outputs)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")
def export_tflite(model, target, request, fmt) -> None:
    """A .tflite (float32, float16, dynamic-range or full-integer) with image-classifier metadata and threshold 0.5."""
    image_exports.export_tflite(model, target, request, fmt, metadata=METADATA)


@register(TASK, "web")
def export_web(model, target, request, fmt) -> None:
    """The browser folder of the image task, its .tflite carrying the 0.5 threshold."""
    target.mkdir(parents=True, exist_ok=True)
    export_tflite(model, target / image_exports.WEB_MODEL, request, "tflite")
    image_exports.write_web_folder(target, image_exports.WEB_PAGE)
