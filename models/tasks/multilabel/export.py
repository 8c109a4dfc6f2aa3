"""Exporters of the multi-label task: the image task's formats, with a 0.5 score threshold in the TFLite metadata.

The model given here already carries its per-label thresholds (`layers.ThresholdShift`), so MediaPipe's
ImageClassifier, reading the metadata's global threshold, answers exactly the labels dlpipe predict does.
"""

from __future__ import annotations

import functools

from dlpipe.models import tflite_metadata
from dlpipe.models.tasks.image import export as image_exports
from dlpipe.models.export import register
from dlpipe.models.export.converters import write_keras
from dlpipe.models.tasks.multilabel import DECISION_THRESHOLD

TASK = "multilabel"
METADATA = functools.partial(tflite_metadata.image_classifier_metadata, mean=[0.0], std=[1.0],
                             score_threshold=DECISION_THRESHOLD)

register(TASK, "keras")(write_keras)
register(TASK, "savedmodel")(image_exports.export_savedmodel)


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
