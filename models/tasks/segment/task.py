"""The segment task: photos in, one class per pixel out (mask PNGs and overlays at the photo's own size).

Inputs are read and decoded exactly as the image task reads them (`dlpipe.data.preprocess`), but
stretched to the model's size (no crop, so every output pixel maps back onto the whole photo). A
model's output is (N, H, W, C) class probabilities, or (N, H, W, 1) for a binary model whose one
channel is the foreground probability (MediaPipe's selfie segmenter); `class_probabilities` turns
both into (H, W, C). A batch job with `--out FOLDER` writes per input a class-index mask PNG
(palette PNG: viewers show colours, readers get the indices) resized to the photo's size, and an
overlay JPEG; rows go to FOLDER/masks.jsonl. Those masks are exactly what `dlpipe run segment`
reads as training targets.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe.data.preprocess_spec import ImagePreprocessing
from dlpipe.errors import DataError
from dlpipe.models.tasks.base import InputSet, LabelledData, PreparedBatch, Task, writer_folders
from dlpipe.models.tasks.image import ImageTask

if TYPE_CHECKING:
    from dlpipe.models.artifacts import SideFiles

ROWS_FILE = "masks.jsonl"
OVERLAY_DIR = "overlays"
# class colours of masks and overlays (class 0, background, is drawn transparent in overlays)
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128))


@dataclass(frozen=True)
class SegmentPreprocessing(ImagePreprocessing):
    """The image preprocessing, always stretching (a mask maps back onto the whole photo), times pixel_scale.

    pixel_scale: 1 for dlpipe models (pixels in [0, 255], normalisation inside the model);
    1/255 for models that take [0, 1] (MediaPipe's selfie segmenter).
    exif_orientation is off: masks are drawn on the photo's stored pixels (the load checks their sizes so).
    """

    resize: str = "stretch"
    crop_fraction: float = 1.0
    pixel_scale: float = 1.0
    exif_orientation: bool = False

    def __post_init__(self) -> None:
        if self.resize != "stretch":
            raise ValueError(f"segmentation resizes with 'stretch' (a mask maps back onto the whole photo). "
                             f"Received: resize={self.resize!r}")
        super().__post_init__()


def class_probabilities(output: np.ndarray) -> np.ndarray:
    """One output (H, W, C) -> class probabilities (H, W, C >= 2); a single channel is P(foreground)."""
    output = np.asarray(output, np.float32)
    if output.shape[-1] == 1:
        return np.concatenate([1.0 - output, output], axis=-1)
    return output


def mask_of(output: np.ndarray) -> np.ndarray:
    """Class index per pixel (H, W) uint8 of one output."""
    return np.argmax(class_probabilities(output), axis=-1).astype(np.uint8)


def palette_png(mask: np.ndarray) -> bytes:
    """A class-index mask as a palette PNG: the stored values are the indices, viewers show PALETTE colours."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    colours = [value for colour in PALETTE for value in colour]
    image.putpalette(colours + [255] * (768 - len(colours)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def overlay(photo: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo (H, W, 3 uint8) with every non-background pixel tinted in its class colour."""
    colours = np.asarray(PALETTE, np.float32)[np.asarray(mask) % len(PALETTE)]
    tinted = photo.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.where((np.asarray(mask) > 0)[..., None], tinted, photo).astype(np.uint8)


def resize_probabilities(probabilities: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w, C) probabilities -> (height, width, C), bilinear (smoother edges than resizing the argmax)."""
    import cv2

    channels = [cv2.resize(probabilities[..., c], (width, height), interpolation=cv2.INTER_LINEAR)
                for c in range(probabilities.shape[-1])]
    return np.stack(channels, axis=-1)


def pixel_fractions(mask: np.ndarray, class_names: list[str]) -> dict[str, float]:
    counts = np.bincount(np.asarray(mask).ravel(), minlength=len(class_names))[: len(class_names)]
    return {name: float(count) / max(mask.size, 1) for name, count in zip(class_names, counts)}


class MaskWriter:
    """`--out FOLDER` of a segmentation batch job: FOLDER/NAME.png (class indices), FOLDER/overlays/NAME.jpg.

    NAME is the photo's file stem, with a short hash of its path added when two inputs of the
    job share a stem, so a resumed job writes every input to the same files again.
    """

    def __init__(self, out: Path, inputs: InputSet):
        self.folder, self.rows_file = writer_folders(out, ROWS_FILE, "segmentation")
        stems: dict[str, int] = {}
        for key in inputs.ids:
            stem = Path(str(inputs.payloads.get(key, key))).stem
            stems[stem] = stems.get(stem, 0) + 1
        self._names = {}
        for key in inputs.ids:
            stem = Path(str(inputs.payloads.get(key, key))).stem
            unique = stems[stem] == 1
            self._names[key] = stem if unique else f"{stem}-{hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"

    def write(self, key: str, payload: Any, output: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        from dlpipe import atomic

        with Image.open(payload) as opened:  # no EXIF rotation: TensorFlow's decoder, which fed the model, does none
            photo = np.asarray(opened.convert("RGB"))
        height, width = photo.shape[:2]
        mask = np.argmax(resize_probabilities(class_probabilities(output), width, height), axis=-1).astype(np.uint8)
        name = self._names.get(key) or Path(str(payload)).stem
        mask_path = self.folder / f"{name}.png"
        overlay_path = self.folder / OVERLAY_DIR / f"{name}.jpg"
        overlay_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing_file(mask_path) as tmp:
            tmp.write_bytes(palette_png(mask))
        buffer = io.BytesIO()
        Image.fromarray(overlay(photo, mask)).save(buffer, format="JPEG", quality=90)
        with atomic.replacing_file(overlay_path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        return {"mask": str(mask_path), "overlay": str(overlay_path), "size": [width, height]}


class SegmentTask(Task):
    """Photos -> float32 pixels (N, S, S, 3) stretched to the model's size; outputs (N, S, S, C) per-pixel classes."""

    name = "segment"
    exporters_module = "dlpipe.models.tasks.segment.export"
    description = "semantic segmentation: photos in images/, class-index mask PNGs with the same stems in masks/"

    def __init__(self) -> None:
        self._images = ImageTask()  # reading and decoding photos is the image task's job

    def without_tensorflow(self) -> "SegmentTask":
        """This task reading photos as the image task does without TensorFlow (NumPy/Pillow)."""
        twin = copy.copy(self)
        twin._images = self._images.without_tensorflow()
        return twin

    def preprocessing_from_dict(self, values: dict[str, Any]) -> SegmentPreprocessing:
        return SegmentPreprocessing.from_dict(values)

    # --- raw inputs: photos, read as the image task reads them -------------------------------
    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        return self._images.collect_inputs(sources)

    def batches(self, inputs: InputSet, prep: SegmentPreprocessing, batch_size: int) -> Iterator[PreparedBatch]:
        return self._images.batches(inputs, prep, batch_size)

    def prepare(self, raw: Any, prep: SegmentPreprocessing) -> np.ndarray:
        return self._images.prepare(raw, prep)

    def stack(self, items: Sequence[Any]) -> np.ndarray:
        return self._images.stack(items)

    def labelled_data(self, path: Path) -> LabelledData:
        """A segmentation folder (images/ + masks/, as `dlpipe run segment` reads it): the labels are the mask files."""
        from dlpipe.data.images import display_name
        from dlpipe.data.masks import scan_mask_folder

        folder = scan_mask_folder(path)  # every pair checked: sizes, modes, readable files
        inputs = InputSet()
        for image in folder.images:
            inputs.add(display_name(image), image)
        return LabelledData(inputs, list(folder.masks), [])

    def check_labels(self, labels: Sequence[str], class_names: list[str], data: str) -> None:
        """Mask files are checked against the model's classes in `score`, as they are read."""

    def output_writer(self, out: Path | None, inputs: InputSet, draw: Path | None = None) -> MaskWriter | None:
        """With --out, each photo's mask PNG and overlay (the segmenter's drawing: --draw is not needed)."""
        if draw is not None:
            raise DataError("--draw", "a segmentation job draws each mask over its photo in FOLDER/overlays/: give "
                                      "--out FOLDER instead")
        return MaskWriter(out, inputs) if out is not None else None

    # --- feeding each format ------------------------------------------------------------------
    def keras_feed(self, prep: SegmentPreprocessing, side: "SideFiles") -> Callable[[Any], Any]:
        return lambda batch: np.asarray(batch, np.float32) * np.float32(prep.pixel_scale)

    def savedmodel_predict(self, loaded: Any, prep: SegmentPreprocessing, side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_pixels" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_pixels signature; export it again with dlpipe export")
        signature = loaded.signatures["serving_pixels"]
        scale = np.float32(prep.pixel_scale)
        return lambda batch: signature(pixels=tf.constant(np.asarray(batch, np.float32) * scale))["probabilities"].numpy()

    def tflite_feed(self, prep: SegmentPreprocessing, side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        scale = np.float32(prep.pixel_scale)
        return lambda batch, details: [np.asarray(batch, np.float32) * scale]

    # --- outputs ------------------------------------------------------------------------------
    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        """The share of pixels of each class, largest first (label: the largest non-background class)."""
        fractions = pixel_fractions(mask_of(output), class_names)
        order = sorted(fractions, key=lambda name: -fractions[name])
        rounded = {name: round(value, digits) if digits is not None else value for name, value in fractions.items()}
        top = [{"label": name, "score": rounded[name]} for name in order[: max(1, top_k)]]
        present = [name for name in order if name != class_names[0] and fractions[name] > 0]
        label = present[0] if present else class_names[0]
        return {"label": label, "score": rounded[label], "top": top}

    def answer(self, output: np.ndarray, class_names: list[str], top_k: int) -> dict[str, Any]:
        """An HTTP answer: the pixel shares and the mask at the model's resolution as a base64 palette PNG."""
        import base64

        mask = mask_of(output)
        return {**self.describe(output, class_names, top_k), "mask_png": {"b64": base64.b64encode(palette_png(mask)).decode()},
                "mask_size": [int(mask.shape[1]), int(mask.shape[0])]}

    def score(self, labels: Sequence[str], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        """IoU against mask files (`labels` are their paths), each read at the model's resolution."""
        from dlpipe.data.masks import read_mask
        from dlpipe.models.tasks.segment.metrics import segmentation_report

        predicted = [mask_of(output) for output in outputs]
        truth = [read_mask(path, size=pred.shape[0]) for path, pred in zip(labels, predicted)]
        for path, mask in zip(labels, truth):
            if mask.size and int(mask.max()) >= len(class_names):
                raise DataError(str(path), f"mask holds class index {int(mask.max())}; the model has {len(class_names)} "
                                           f"classes ({', '.join(class_names)}): index 0 .. {len(class_names) - 1}")
        return segmentation_report(truth, predicted, class_names)

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        low, high = report["mean_iou_interval"]
        lines = [f"mean IoU {report['mean_iou']:.4f} (95% interval {low:.3f}-{high:.3f}) on {report['count']} images, "
                 f"pixel accuracy {report['pixel_accuracy']:.4f}"]
        return lines + [f"  {name}: IoU " + (f"{scores['iou']:.3f}" if scores["iou"] is not None else "- (absent)")
                        for name, scores in report["per_class"].items()]

    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """Pixel agreement of the masks (as `top1_agreement`, what `--artifact auto` reads) and the IoU between them."""
        from dlpipe.models.tasks.segment.metrics import agreement

        reference_masks = [mask_of(row) for row in reference]
        output_masks = [mask_of(row) for row in outputs]
        reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
        return {**agreement(reference_masks, output_masks),
                "max_abs_diff": float(np.max(np.abs(reference - outputs))) if reference.size else None,
                "count": int(len(reference))}


TASK = SegmentTask  # registered by dlpipe.models.tasks.TASK_MODULES
