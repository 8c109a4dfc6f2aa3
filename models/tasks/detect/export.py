"""Exporters of the detect task: a SavedModel that takes encoded photos, TFLite files MediaPipe's ObjectDetector runs.

SavedModel (`savedmodel/`):
  `serving_default`  image_bytes string[N] (JPEG/PNG/GIF/BMP; TF Serving base64-decodes "_bytes" inputs):
                     decode, stretch to 512x512 and the detector, all in the graph; answers `boxes` [N, 100, 4]
                     (x1, y1, x2, y2 in each photo's own pixels), `scores` [N, 100], `classes` [N, 100] (int),
                     `labels` [N, 100] (COCO names), best first, no threshold applied.
  `serving_pixels`   pixels float32 [N, 512, 512, 3] in [0, 255] -> `detections` [N, 100, 6] with boxes as
                     fractions of the image (what dlpipe's runtime feeds; it scales them to the photo).
TFLite (float32, float16, dynamic-range int8 weights; full-integer int8 is refused, see below): one image float32 [1, 512, 512, 3] RGB in [0, 255] (the
caller resizes; dlpipe's runtime stretches as preprocessing.json says) and MediaPipe ObjectDetector's
four outputs: locations [1, 100, 4] (ymin, xmin, ymax, xmax as fractions), classes [1, 100], scores
[1, 100], count [1], with the standard object-detector metadata and labels, so the file alone runs in
MediaPipe Tasks. The graph's decoding half is written for a batch of one, so the file takes one image
(dlpipe's runtime runs a batch row by row). There is no NMS in the file: CenterNet's peak picking (a 3x3
max-pool over the heat map) leaves few duplicates; dlpipe applies class-wise NMS when it describes rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts
from dlpipe.models.coco_detector import INPUT_SIZE, MAX_DETECTIONS, normalized
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import _quiet_convert, quantization_of
from dlpipe.models.tasks.detect import web as _web  # noqa: F401 - registers (detect, "web"): the page

TASK = "detect"

refuse(TASK, "keras", "the detector is a TensorFlow graph (converted from TF.js), not Keras layers: export "
                      "savedmodel or tflite")
refuse(TASK, "onnx", "no ONNX exporter for the detector yet (its graph, converted from TF.js, is not tried with "
                     "tf2onnx): export savedmodel or tflite")
refuse(TASK, "tflite-int8", "full-integer int8 does not hold for this detector: calibrated on darknet's five sample "
                           "photos, the quantised heat map collapses (every score 0.173, every box empty) and 0 of "
                           "the float model's 28 boxes are found (measured 2026-12-01); use tflite-float16 or "
                           "tflite-dynamic")


def _detector(model: Any) -> Any:
    detector = getattr(model, "detector", None)
    if detector is None:
        raise DlpipeError("export: a detect model is the coco-detector graph (dlpipe.models.coco_detector)")
    return detector


@register(TASK, "savedmodel")
def export_savedmodel(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (image_bytes) answering boxes in each photo's pixels; `serving_pixels` for dlpipe."""
    from dlpipe.models.tasks.image.export import checked_map

    detector = _detector(model)
    prep = request.bundle.preprocessing
    task = _task()
    labels = tf.constant(request.bundle.class_names)

    def detect(pixels: tf.Tensor) -> tf.Tensor:
        found = tf.map_fn(lambda image: detector(image[None])[0], pixels,
                          fn_output_signature=tf.TensorSpec([MAX_DETECTIONS, 6], tf.float32))
        return normalized(found)

    def from_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"detections": detect(pixels)}

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = checked_map(image_bytes, prep, lambda data: task.input_from_bytes(data, prep), {
            "pixels": tf.TensorSpec([prep.image_size, prep.image_size, 3], tf.float32),
            "sizes": tf.TensorSpec([2], tf.int32)})
        found = detect(inputs["pixels"])
        sizes = tf.cast(inputs["sizes"], tf.float32)  # (height, width)
        scale = tf.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=1)[:, None, :]
        classes = tf.cast(found[..., 5], tf.int32)
        return {"boxes": found[..., :4] * scale, "scores": found[..., 4], "classes": classes,
                "labels": tf.gather(labels, classes)}

    module = tf.Module()
    module.graph = detector.loaded  # tracked: the graph's functions and constants are saved with the endpoints
    serving = tf.function(from_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    pixels = tf.function(from_pixels, input_signature=[
        tf.TensorSpec([None, prep.image_size, prep.image_size, 3], tf.float32, name="pixels")])
    module.serving_default, module.serving_pixels = serving, pixels
    tf.saved_model.save(module, str(target), signatures={"serving_default": serving, "serving_pixels": pixels})


def mediapipe_function(model: Any, size: int = INPUT_SIZE) -> Any:
    """The batch-of-one concrete function with MediaPipe ObjectDetector's four outputs."""
    detector = _detector(model)

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
    def detect(image: tf.Tensor) -> dict[str, tf.Tensor]:
        found = normalized(detector(image))  # [1, 100, 6]: x1 y1 x2 y2 (fractions), score, class
        locations = tf.stack([found[..., 1], found[..., 0], found[..., 3], found[..., 2]], axis=-1)
        return {"locations": locations, "classes": found[..., 5], "scores": found[..., 4],
                "count": tf.constant([float(MAX_DETECTIONS)], tf.float32)}

    return detect.get_concrete_function()


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """A .tflite that MediaPipe's ObjectDetector loads (float input, standard detector metadata)."""
    from dlpipe.models.tflite_metadata import object_detector_metadata

    quantize = quantization_of(fmt)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([mediapipe_function(model)], model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    flatbuffer = _named_outputs(_quiet_convert(converter))
    def standard(flatbuffer: bytes, labels: list[str], **info: Any) -> bytes:
        # the model card: what the model is and whose terms apply (the shared writer's defaults say "classifier")
        info.update(name="dlpipe COCO object detector (CenterNet-MobileNetV3)", license=_licence())
        return object_detector_metadata(flatbuffer, labels, mean=[0.0], std=[1.0], **info)

    description = (f"Finds the 80 COCO object classes in an RGB image ({fmt}). Input: {INPUT_SIZE}x{INPUT_SIZE} RGB "
                   "pixels in [0, 255] (the photo stretched); outputs locations (ymin, xmin, ymax, xmax as fractions "
                   "of the image), classes, scores, count.")
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle, standard, description))


def _named_outputs(flatbuffer: bytes) -> bytes:
    """Name each output tensor after its signature key (the converter calls them PartitionedCall:N).

    MediaPipe's metadata and dlpipe's runtime tell the four outputs apart by name; two of them have the
    same shape ([1, 100]), so the names are all there is.
    """
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    signature = Interpreter(model_content=flatbuffer)._get_full_signature_list()  # noqa: SLF001 - name -> tensor index
    outputs = next(iter(signature.values()))["outputs"]
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for key, index in outputs.items():
        model.subgraphs[0].tensors[index].name = key.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _task() -> Any:
    from dlpipe.models.tasks import get_task

    return get_task(TASK)


def _licence() -> str:
    from dlpipe.models.coco_detector import LICENSE_NOTE

    return LICENSE_NOTE + "."
