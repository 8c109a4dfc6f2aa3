"""Exporters of the detect task: a SavedModel that takes encoded photos, TFLite files MediaPipe's ObjectDetector runs.

SavedModel (`savedmodel/`):
  `serving_default`  image_bytes string[N] (JPEG/PNG/GIF/BMP; TF Serving base64-decodes "_bytes" inputs):
                     decode, stretch to the model's size, the detector and class-wise NMS at IoU 0.5, all in
                     the graph; answers `boxes` [N, 100, 4] (x1, y1, x2, y2 in each photo's own pixels), `scores`
                     [N, 100], `classes` [N, 100] (int), `labels` [N, 100], best first, `count` [N] boxes kept by
                     NMS (the rest zero), no score threshold applied.
  `serving_pixels`   pixels float32 [N, S, S, 3] in [0, 255] -> `detections` [N, 100, 6] with boxes as
                     fractions of the image (what dlpipe's runtime feeds; it scales them to the photo and applies
                     NMS when it describes rows).
TFLite (float32, float16, dynamic-range int8 weights; int8 for trained detectors: the network full-integer but
for the heat-map logits' last convolution, the decoding float; refused for coco-detector, see below): one image
float32 [1, S, S, 3] RGB in [0, 255] (the caller resizes; dlpipe's runtime stretches as preprocessing.json says)
and MediaPipe ObjectDetector's four outputs: locations [1, 100, 4] (ymin, xmin, ymax, xmax as fractions), classes [1, 100], scores
[1, 100], count [1], with the standard object-detector metadata and labels, so the file alone runs in
MediaPipe Tasks. The graph's decoding half is written for a batch of one, so the file takes one image
(dlpipe's runtime runs a batch row by row). The decoding is in the file; there is no NMS op: CenterNet's peak
picking (a 3x3 max-pool over the heat map) leaves few duplicates; dlpipe applies class-wise NMS when it
describes rows. A trained detector (models/detector.py) exports the same way at its own input size S.
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
from dlpipe.models.export.tflite_source import tflite_converter
from dlpipe.models.tasks.detect import web as _web  # noqa: F401 - registers (detect, "web"): the page

TASK = "detect"
NMS_IOU = 0.5  # the SavedModel's class-wise NMS, as `dlpipe predict`'s default --nms-iou

refuse(TASK, "onnx", "no ONNX exporter for the detector yet (its graph, converted from TF.js, is not tried with "
                     "tf2onnx): export savedmodel or tflite")
# the decoding layer's tensors (models/detector.py CenterNetDecode, named "decode"): int8 keeps them float
DECODING_TENSORS = r"(^|/)decode(_\d+)?/"
# int8 keeps float the heat-map logits' 1x1 convolution and all that reads it (the head map's concatenation, the
# decoding). Why: the quantiser gives a CONCATENATION's inputs its output's scale, and it took the box head's: the
# ImageNet start's head map got [0, 3.7] (its box log-distances' range), so every negative heat-map logit read 0, a
# score of 0.5 everywhere (int8 mAP 0.199; 0.321 with this one layer float, float 0.324). The COCO start's box head
# reaches -6, which hid it there (0.560 either way).
INT8_FLOAT_TENSORS = rf"(^|/)heatmap_out(_\d+)?/|{DECODING_TENSORS}"
# the layers writing the head map (models/detector.py's and models/centernet_start.py's): their top values are the
# detections, so int8 keeps their calibrated ranges
HEAD_LAYERS = ("head", "heatmap_out", "box_out", "box_distances", "box_log_distances")
HEAD_TENSORS = rf"(^|/)({'|'.join(HEAD_LAYERS)})(_\d+)?/"
COCO_INT8_REFUSAL = ("full-integer int8 does not hold for coco-detector: calibrated on darknet's five sample "
                     "photos, the quantised heat map collapses (every score 0.173, every box empty) and 0 of the "
                     "float model's 28 boxes are found (measured 2026-12-01); use tflite-float16 or tflite-dynamic")


def _graph_detector(model: Any) -> Any:
    """coco-detector's converted TF.js graph (batch of one, 512-px frame), or None for a trained Keras detector."""
    return getattr(model, "detector", None)


def detect_rows(model: Any) -> Any:
    """pixels float32 [N, S, S, 3] -> [N, K, 6] rows (boxes as fractions): the graph row by row, or the Keras model."""
    detector = _graph_detector(model)
    if detector is None:
        return lambda pixels: model(pixels, training=False)
    return lambda pixels: normalized(tf.map_fn(lambda image: detector(image[None])[0], pixels,
                                               fn_output_signature=tf.TensorSpec([MAX_DETECTIONS, 6], tf.float32)))


def _input_size(model: Any) -> int:
    return INPUT_SIZE if _graph_detector(model) is not None else int(model.input_shape[1])


@register(TASK, "keras")
def export_keras(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """A trained detector (decoding included) as a .keras file; coco-detector's graph has no Keras layers to save."""
    from dlpipe.models.export.converters import write_keras

    if _graph_detector(model) is not None:
        raise DlpipeError("export: coco-detector is a TensorFlow graph (converted from TF.js), not Keras layers: "
                          "export savedmodel or tflite")
    write_keras(model, target, request, fmt)


@register(TASK, "savedmodel")
def export_savedmodel(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (image_bytes) answering boxes in each photo's pixels; `serving_pixels` for dlpipe."""
    from dlpipe.models.tasks.image.export import checked_map

    detect = detect_rows(model)
    prep = request.bundle.preprocessing
    task = _task()
    labels = tf.constant(request.bundle.class_names)

    def from_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"detections": detect(pixels)}

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = checked_map(image_bytes, prep, lambda data: task.input_from_bytes(data, prep), {
            "pixels": tf.TensorSpec([prep.image_size, prep.image_size, 3], tf.float32),
            "sizes": tf.TensorSpec([2], tf.int32)})
        found = detect(inputs["pixels"])
        boxes, scores, classes, count = class_wise_nms(found, len(request.bundle.class_names))
        sizes = tf.cast(inputs["sizes"], tf.float32)  # (height, width)
        scale = tf.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=1)[:, None, :]
        return {"boxes": boxes * scale, "scores": scores, "classes": classes, "labels": tf.gather(labels, classes),
                "count": count}

    module = tf.Module()
    # tracked: the graph's functions and constants (or the Keras model's variables) are saved with the endpoints
    module.graph = _graph_detector(model).loaded if _graph_detector(model) is not None else model
    serving = tf.function(from_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    pixels = tf.function(from_pixels, input_signature=[
        tf.TensorSpec([None, prep.image_size, prep.image_size, 3], tf.float32, name="pixels")])
    module.serving_default, module.serving_pixels = serving, pixels
    tf.saved_model.save(module, str(target), signatures={"serving_default": serving, "serving_pixels": pixels})


def class_wise_nms(rows: tf.Tensor, num_classes: int, iou: float = NMS_IOU) -> tuple[tf.Tensor, ...]:
    """[N, K, 6] rows -> boxes [N, K, 4], scores [N, K], classes [N, K] (int32), count [N] after class-wise NMS
    (what `dlpipe predict --nms-iou` applies), best first, zero-padded past `count`."""
    keep = rows.shape[1] or MAX_DETECTIONS
    per_class = tf.one_hot(tf.cast(rows[..., 5], tf.int32), num_classes) * rows[..., 4:5]  # [N, K, classes]
    boxes, scores, classes, count = tf.image.combined_non_max_suppression(
        rows[..., None, :4], per_class, max_output_size_per_class=keep, max_total_size=keep, iou_threshold=iou,
        score_threshold=0.0, pad_per_class=False, clip_boxes=False)
    return boxes, scores, tf.cast(classes, tf.int32), count


def graph_function(model: Any) -> Any:
    """coco-detector's graph as the batch-of-one concrete function with MediaPipe ObjectDetector's four outputs;
    the graph is called on its one image directly (no tf.map_fn loop: a .tflite must have a single subgraph)."""
    from dlpipe.models.detector import MediaPipeOutputs

    detector, outputs = _graph_detector(model), MediaPipeOutputs(name="mediapipe_outputs")

    @tf.function(input_signature=[tf.TensorSpec([1, INPUT_SIZE, INPUT_SIZE, 3], tf.float32, name="image")])
    def detect(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(normalized(detector(image)))  # [1, 100, 6]: x1 y1 x2 y2 (fractions), score, class

    return detect.get_concrete_function()


def convert_detector(model: Any, configure: Any, convert: Any = _quiet_convert) -> bytes:
    """The detector answering MediaPipe's four outputs for one image, as a flatbuffer whose outputs carry their
    names; `configure(converter)` sets the quantisation, `convert(converter)` runs it.

    A Keras detector is converted as a Keras model wrapped to answer MediaPipe's four outputs for a batch of
    one (`from_keras_model`): as a concrete function with the model as trackable object its variables stayed
    READ_VARIABLE ops that LiteRT ran uninitialised (NaN boxes), and frozen into constants first, int8
    calibration aborted the process inside the converter.
    """
    if _graph_detector(model) is not None:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([graph_function(model)], model)
    else:
        converter = tflite_converter(model, wrap=_mediapipe_model)
    configure(converter)
    return _named_outputs(convert(converter))


def _mediapipe_model(model: Any) -> Any:
    """The Keras detector taking one image and answering MediaPipe ObjectDetector's outputs by name."""
    import keras

    from dlpipe.models.detector import MediaPipeOutputs

    size = _input_size(model)
    image = keras.Input((size, size, 3), batch_size=1, name="image")
    return keras.Model(image, MediaPipeOutputs(name="mediapipe_outputs")(model(image)), name=model.name)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """A .tflite that MediaPipe's ObjectDetector loads (float input, standard detector metadata)."""
    quantize = quantization_of(fmt)

    def configure(converter: Any) -> None:
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]

    write_detector_tflite(model, target, request, fmt, configure)


def write_detector_tflite(model: Any, target: Path, request: ExportRequest, fmt: str, configure: Any,
                          convert: Any = _quiet_convert) -> None:
    """Convert with `configure`'s quantisation and write the file with the object-detector metadata and labels."""
    from dlpipe.models.tflite_metadata import object_detector_metadata

    flatbuffer = convert_detector(model, configure, convert)
    coco = _graph_detector(model) is not None
    size = _input_size(model)

    def standard(flatbuffer: bytes, labels: list[str], **info: Any) -> bytes:
        # the model card: what the model is and whose terms apply (the shared writer's defaults say "classifier")
        if coco:
            info.update(name="dlpipe COCO object detector (CenterNet-MobileNetV3)", license=_licence())
        else:
            info.update(name=f"dlpipe object detector ({model.name})")
            if "coco" in model.name:  # fine-tuned from coco-detector's weights: their terms travel with the file
                info.update(license=_licence())
        return object_detector_metadata(flatbuffer, labels, mean=[0.0], std=[1.0], **info)

    what = "the 80 COCO object classes" if coco else f"{len(request.bundle.class_names)} object classes"
    description = (f"Finds {what} in an RGB image ({fmt}). Input: {size}x{size} RGB "
                   "pixels in [0, 255] (the photo stretched); outputs locations (ymin, xmin, ymax, xmax as fractions "
                   "of the image), classes, scores, count; decoding (heat-map peaks, top-k) is inside the file.")
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle, standard, description))


@register(TASK, "tflite-int8")
def export_tflite_int8(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """A trained detector whose network (encoder, neck, heads) is full-integer int8, calibrated on training photos
    (the COCO start's activation ranges narrowed to the 99.99th percentile of their calibration values:
    models/export/percentile_ranges.py; the heads' outputs keep theirs); the heat-map logits' last convolution and
    the decoding after the head map (peaks, top-k, box arithmetic: INT8_FLOAT_TENSORS) stay float, so heat-map
    logits do not take the box head's scale, nor boxes, scores and class indices share one 8-bit scale. Float32
    pixels in and MediaPipe's four float outputs out (quantise/dequantise at the edges), so the same metadata
    serves."""
    from dlpipe.models.export.converters import _calibration, int8_float_after
    from dlpipe.models.tasks.image.export import representative_images

    if _graph_detector(model) is not None:
        raise DlpipeError(f"export: {COCO_INT8_REFUSAL}")
    if not request.calibration:
        raise DlpipeError("export: int8 needs training photos for calibration; the run's load.path has none")
    samples = representative_images(list(request.calibration), request.bundle.preprocessing.image())
    narrow_except = f"{HEAD_TENSORS}|{INT8_FLOAT_TENSORS}" if int8_ranges_narrowed(model) else None

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration([sample[None] for sample in samples])

    write_detector_tflite(model, target, request, fmt, configure,
                          convert=lambda converter: int8_float_after(converter, INT8_FLOAT_TENSORS, narrow_except))


def int8_ranges_narrowed(model: Any) -> bool:
    """Whether int8 narrows this detector's activation ranges to a percentile (the export, and the training that
    prepares a model for it, round alike). Narrowing helps the COCO start's heavy-tailed MobileNetV3 (fold 0: mAP
    0.490 -> 0.528), not the ImageNet start's ReLU6 network (0.199 -> 0.191): only the COCO start's are narrowed."""
    return "coco" in model.name


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
