"""Exporters of the image task: a SavedModel that takes encoded image bytes, and TFLite that takes pixels.

The SavedModel's `serving_default` takes encoded JPEG/PNG/GIF/BMP bytes
(`image_bytes`, string[N]; TF Serving's REST API base64-decodes inputs whose
name ends in "_bytes") and runs dlpipe's own preprocessing in the graph;
`serving_pixels` takes preprocessed pixels (float32 [N, S, S, 3] in [0, 255]).
TFLite files take pixels (float32, or uint8 for full-integer int8) and carry the standard
image-classifier metadata, so MediaPipe Tasks' ImageClassifier runs them with label names: RGB,
NormalizationOptions mean 0 / std 1 (the model normalises inside, pixels in [0, 255]), labels.
The input keeps a dynamic batch: the converter stores its shape as [1, S, S, 3] (what MediaPipe
reads) with signature [-1, S, S, 3] (what dlpipe's runtime resizes for batches).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from dlpipe.data.images import tf_path
from dlpipe.data.preprocess import ImagePreprocessing, header_pixels, known_image_format, load_image, preprocess_bytes
from dlpipe.errors import DataError, DlpipeError
from dlpipe.models import artifacts, tflite_metadata
from dlpipe.models.export import ExportRequest, register
from dlpipe.models.export.converters import convert, export_archive, labelled_outputs, quantization_of, write_keras
from dlpipe.models.export.onnx import pixels_exporter
from dlpipe.models.export.tflite_source import tflite_converter
from dlpipe.models.export.web import WEB_MODEL, WebPage, write_web_folder

TASK = "image"


register(TASK, "keras")(write_keras)
register(TASK, "onnx")(pixels_exporter)  # pixels in, as the float32 .tflite


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str,
                      named: Callable[[tf.Tensor, list[str]], dict[str, tf.Tensor]] = labelled_outputs) -> None:
    """`serving_default` (image_bytes: string[N]) and `serving_pixels` (pixels: float32[N, S, S, 3]).

    `named` turns the model's output into the signatures' named outputs (default: probabilities, best label, score).
    """
    prep: ImagePreprocessing = request.bundle.preprocessing
    class_names = request.bundle.class_names
    if prep.filter != "none":
        raise DataError(str(target), f"preprocess.filter={prep.filter} runs OpenCV outside TensorFlow and cannot "
                                     "be saved in the graph; export with filter none, or preprocess on the client")
    size = prep.image_size

    def outputs(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return named(model(pixels, training=False), class_names)

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(checked_pixels(image_bytes, prep))

    archive = export_archive(model)
    archive.add_endpoint("serving_default", from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("serving_pixels", outputs, [tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")])
    archive.write_out(str(target), verbose=False)


def checked_map(image_bytes: tf.Tensor, prep: Any, decode: Callable[[tf.Tensor], Any], signature: Any) -> Any:
    """`decode` mapped over encoded images string[N] in a SavedModel's graph, after two checks.

    Refuses a batch with an element that is not a known image format or is over `prep.max_pixels`
    (decompression bombs, read from the header before decoding), naming its index: the decoder's own
    error does not say which element failed.
    """
    known = known_image_format(image_bytes)
    check = tf.debugging.Assert(tf.reduce_all(known), ["image_bytes: not a JPEG, PNG, GIF or BMP image at index",
                                                       tf.where(tf.logical_not(known))[:, 0]])
    with tf.control_dependencies([check]):
        small = tf.map_fn(header_pixels, image_bytes, fn_output_signature=tf.int64) <= prep.max_pixels
        size_check = tf.debugging.Assert(tf.reduce_all(small), [
            f"image_bytes: over the limit of {prep.max_pixels} pixels at index", tf.where(tf.logical_not(small))[:, 0]])
    with tf.control_dependencies([size_check]):
        return tf.map_fn(decode, image_bytes, fn_output_signature=signature)


def checked_pixels(image_bytes: tf.Tensor, prep: Any) -> tf.Tensor:
    """Encoded images string[N] -> model pixels float32[N, S, S, 3] by dlpipe's preprocessing (see checked_map)."""
    size = prep.image_size
    return checked_map(image_bytes, prep, lambda data: preprocess_bytes(data, prep),
                       tf.TensorSpec([size, size, 3], tf.float32))


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str,
                  metadata: Callable[..., bytes] | None = None) -> None:
    """A .tflite (float32, float16, dynamic-range or full-integer uint8 in/out) with its side files embedded.

    `metadata` writes the standard metadata (default: the image classifier's, normalisation inside the model).
    """
    quantize = quantization_of(fmt)
    representative = None
    if quantize == "int8":
        if not request.calibration:
            raise DlpipeError("export: int8 needs training images for calibration; the run's load.path has none")
        representative = representative_images(list(request.calibration), request.bundle.preprocessing)
    flatbuffer = convert(tflite_converter(model), quantize, representative)
    standard = metadata or functools.partial(tflite_metadata.image_classifier_metadata, mean=[0.0], std=[1.0])
    with warnings.catch_warnings():
        # a uint8 input whose scale is not 1 (representative_images prevents it): MediaPipe would misread it
        warnings.filterwarnings("error", message="TFLite metadata: the uint8 input", category=UserWarning)
        try:
            data = artifacts.tflite_bytes(flatbuffer, request.bundle, standard, _description(request, fmt))
        except UserWarning as problem:
            raise DlpipeError(f"export: {target.name.removeprefix('.partial-')}: {problem}") from None
    target.write_bytes(data)


def _description(request: ExportRequest, fmt: str) -> str:
    size = request.bundle.preprocessing.image_size
    kind = {"tflite": "float32", "tflite-int8": "full-integer (uint8 in/out)"}.get(fmt, fmt.removeprefix("tflite-"))
    prep = request.bundle.preprocessing
    if prep.resize == "stretch" and prep.sampling == "mediapipe":
        resizing = "trained on photos stretched by bilinear sampling, as MediaPipe Tasks resizes them."
    else:
        resizing = (f"dlpipe resizes as preprocessing.json says ({prep.resize}, {prep.sampling}); MediaPipe Tasks "
                    f"stretches by bilinear sampling, so feed it images prepared that way, or train with "
                    f"preprocess.resize=stretch and preprocess.sampling=mediapipe.")
    return (f"Classifies an RGB image into {len(request.bundle.class_names)} classes ({kind}). Input: "
            f"{size}x{size} RGB pixels in [0, 255] (normalisation is inside the model); {resizing}")


# MediaPipe stretches whatever it is given; a model trained on a centre crop or a letterbox (preprocessing.json's
# `resize`) gets that region drawn on a canvas first, so the page feeds it the pixels dlpipe trains on (up to the
# browser's and MediaPipe's resampling). The image default (stretch) is handed over as it is.
FRAME_JS = """
let preprocessing;
async function framed(picture) {
  preprocessing ??= await fetch("preprocessing.json").then(r => r.ok ? r.json() : {}).catch(() => ({}));
  const mode = preprocessing.resize, w = picture.naturalWidth, h = picture.naturalHeight;
  if (mode !== "crop" && mode !== "pad") return picture;
  const canvas = document.createElement("canvas"), context = canvas.getContext("2d");
  if (mode === "crop") {
    const side = Math.min(w, h) * (preprocessing.crop_fraction ?? 0.875);
    canvas.width = canvas.height = Math.max(1, Math.round(side));
    context.drawImage(picture, (w - side) / 2, (h - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
  } else {
    canvas.width = canvas.height = Math.max(w, h);
    context.fillStyle = "black";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(picture, Math.floor((canvas.width - w) / 2), Math.floor((canvas.height - h) / 2));
  }
  return canvas;
}
"""

WEB_PAGE = WebPage(
    package="tasks-vision", bundle="vision_bundle.mjs", resolver="forVisionTasks", classifier="ImageClassifier",
    title="dlpipe image classifier",
    input_html='<p><input type="file" id="files" accept="image/*" multiple> <button id="go">Classify</button></p>',
    read_inputs_js='inputs = given.split(",");',
    read_user_js='inputs = Array.from(document.getElementById("files").files);',
    prepare_js=("const picture = new Image(); picture.src = typeof item === 'string' ? item : "
                "URL.createObjectURL(item); await picture.decode(); const value = await framed(picture);"),
    helpers_js=FRAME_JS)


@register(TASK, "web")
def export_web(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """A folder with the float32 .tflite (standard metadata included), a page and MediaPipe's web files."""
    target.mkdir(parents=True, exist_ok=True)
    export_tflite(model, target / WEB_MODEL, request, "tflite")
    write_web_folder(target, WEB_PAGE)


def representative_images(paths: list[str], prep: ImagePreprocessing, count: int = 100, seed: int = 0) -> list[np.ndarray]:
    """A seeded sample of training images, preprocessed exactly as in training."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    images = [load_image(tf.constant(tf_path(paths[i])), prep).numpy() for i in sorted(chosen)]
    # One black and one white pixel: the input's calibrated range is then exactly [0, 255], so its
    # uint8 scale is 1 and zero point 0 and the raw bytes MediaPipe feeds mean what LiteRT's quantised
    # pixels mean. (Photos alone may stop at 254 or start at 3.) One pixel barely moves later ranges.
    images[0] = images[0].copy()
    images[0][0, 0], images[0][0, 1] = 0.0, 255.0
    return images
