"""The detection task: encoded photos in, labelled boxes in the photo's own pixels out.

A model batch is {"pixels": float32 [N, S, S, 3] in [0, 255] (the photo
stretched to S x S, the same decode/resize code as classification), "sizes":
int32 [N, 2] (each photo's height, width)}. Every artifact returns
[N, K, 6] rows of x1, y1, x2, y2 as fractions of the image, score, class
index; `finish` scales them to the photo's pixels, so the batch job, the
server and the parity check see boxes in original pixels whatever the
format. Thresholds, class-wise NMS and the box limit are applied when a row
is described (`with_options` sets them: `dlpipe predict --min-score
--nms-iou --max-boxes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import InputSet, LabelledData
from dlpipe.models.tasks.image import ImageTask

if TYPE_CHECKING:
    from dlpipe.data.preprocess_spec import ImagePreprocessing
    from dlpipe.models.artifacts import SideFiles


@dataclass(frozen=True)
class DetectPreprocessing:
    """Decode, stretch to image_size x image_size (what the detector was trained on), RGB in [0, 255].

    sampling: "antialias" filters before downsampling; "mediapipe" samples bilinearly on MediaPipe Tasks' grid
    (as `ImagePreprocessing.sampling`), so MediaPipe's ObjectDetector, stretching a raw photo itself, feeds the
    .tflite the pixels dlpipe does (coco-detector's float32 file on darknet's 7 photos: MediaPipe, in Python and in
    Chromium, finds 29 of LiteRT's 31 boxes at IoU >= 0.9; from antialiased pixels 20 of 30).
    """

    image_size: int = 512
    resize: str = "stretch"
    max_pixels: int = 50_000_000
    sampling: str = "antialias"

    def __post_init__(self) -> None:
        from dlpipe.data.preprocess_spec import SAMPLINGS, check_choice

        check_choice("sampling", self.sampling, SAMPLINGS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DetectPreprocessing":
        return cls(**{key: value for key, value in values.items() if key in cls.__dataclass_fields__})

    def image(self) -> "ImagePreprocessing":
        """The classification spec with the same decode and resize: one preprocessing path for both tasks."""
        from dlpipe.data.preprocess_spec import ImagePreprocessing

        return ImagePreprocessing(image_size=self.image_size, resize=self.resize, max_pixels=self.max_pixels,
                                  sampling=self.sampling, exif_orientation=False)


class DetectTask(ImageTask):
    """Object detection on photos (JPEG, PNG, GIF, BMP): reads inputs like the image task, answers boxes."""

    name = "detect"
    exporters_module = "dlpipe.models.tasks.detect.export"
    description = "object detection: photos in, labelled boxes (in the photo's pixels) out"

    def __init__(self, min_score: float = 0.3, nms_iou: float = 0.5, max_boxes: int = 100):
        if not 0.0 <= min_score <= 1.0:
            raise DataError("--min-score", f"must be between 0 and 1, not {min_score}")
        if not 0.0 < nms_iou <= 1.0:
            raise DataError("--nms-iou", f"must be in (0, 1] (1 keeps overlapping boxes), not {nms_iou}")
        if max_boxes < 1:
            raise DataError("--max-boxes", f"must be at least 1, not {max_boxes}")
        self.min_score, self.nms_iou, self.max_boxes = float(min_score), float(nms_iou), int(max_boxes)

    def with_options(self, **options: Any) -> "DetectTask":
        known = {"min_score", "nms_iou", "max_boxes"}
        given = {key: value for key, value in options.items() if value is not None}
        for key in given:
            if key not in known:
                return super().with_options(**{key: given[key]})
        values = {"min_score": self.min_score, "nms_iou": self.nms_iou, "max_boxes": self.max_boxes, **given}
        twin = DetectTask(**values)
        twin.decoder = self.decoder  # a .tflite's task keeps decoding without TensorFlow
        return twin

    def register_layers(self) -> None:
        from dlpipe.models import centernet_layers, detector  # noqa: F401  (CenterNetDecode; the COCO start's layers)

    # --- preprocessing and inputs -------------------------------------------------------------
    def preprocessing_from_dict(self, values: dict[str, Any]) -> DetectPreprocessing:
        return DetectPreprocessing.from_dict(values)

    def model_input(self, path: Any, prep: DetectPreprocessing) -> Any:
        import tensorflow as tf

        return self.input_from_bytes(tf.io.read_file(path), prep)

    def input_from_bytes(self, contents: Any, prep: DetectPreprocessing) -> dict[str, Any]:
        """Encoded bytes -> {"pixels": the stretched photo, "sizes": its (height, width)}, in the graph."""
        import tensorflow as tf

        from dlpipe.data.preprocess import decode_image, resize_image

        image = decode_image(contents, upright=False)  # boxes are in the stored pixels, as the annotations' sizes
        return {"pixels": resize_image(image, prep.image_size, prep.resize, sampling=prep.sampling),
                "sizes": tf.shape(image, out_type=tf.int32)[:2]}

    def numpy_input(self, contents: bytes, prep: DetectPreprocessing) -> dict[str, np.ndarray]:
        """`input_from_bytes` in NumPy/Pillow (`dlpipe.data.numpy_preprocess`): the stretched photo and its size."""
        from dlpipe.data.numpy_preprocess import decode_array, resize_array

        image = decode_array(contents, upright=False)  # stored pixels, as `input_from_bytes`
        pixels = resize_array(image, prep.image_size, prep.resize, sampling=prep.sampling)
        return {"pixels": pixels, "sizes": np.array(image.shape[:2], np.int32)}

    def stack(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        return {"pixels": np.stack([np.asarray(item["pixels"], np.float32) for item in items]),
                "sizes": np.stack([np.asarray(item["sizes"], np.int32) for item in items])}

    def labelled_data(self, path: Path) -> LabelledData:
        """Photos and their boxes from COCO JSON, a Pascal VOC folder or a YOLO folder (or its data.yaml), the
        format told from what `path` holds; see `data/box_annotations.py`."""
        from dlpipe.data.box_annotations import read_box_annotations
        from dlpipe.data.images import display_name

        found = read_box_annotations(path)
        inputs = InputSet()
        for photo in found.images:
            inputs.add(display_name(photo), photo)
        return LabelledData(inputs, found.objects, [])

    def check_labels(self, labels: Sequence[Any], class_names: list[str], data: str) -> None:
        """Every annotated object's label must be one of the model's (COCO's names for coco-detector)."""
        import difflib

        unknown = sorted({obj.label for objects in labels for obj in objects} - set(class_names))
        if unknown:
            hints = [f"{name} -> {close[0]}?" for name in unknown
                     for close in [difflib.get_close_matches(name, class_names, n=1)] if close]
            raise DataError(data, f"categories {unknown} are not among the model's {len(class_names)} labels; rename "
                                  "them to its names" + (f" ({', '.join(hints)})" if hints else
                                                          f" ({', '.join(class_names[:5])}, ...)"))

    # --- feeding each format ------------------------------------------------------------------
    def keras_feed(self, prep: DetectPreprocessing, side: "SideFiles") -> Callable[[Any], Any]:
        return lambda batch: np.asarray(batch["pixels"], np.float32)

    def savedmodel_predict(self, loaded: Any, prep: DetectPreprocessing, side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_pixels" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_pixels signature; export it again")
        signature = loaded.signatures["serving_pixels"]
        return lambda batch: signature(pixels=tf.constant(np.asarray(batch["pixels"], np.float32)))["detections"].numpy()

    def tflite_feed(self, prep: DetectPreprocessing, side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        return lambda batch, details: [np.asarray(batch["pixels"], np.float32)]

    def tflite_output(self, arrays: list[np.ndarray], details: list[dict[str, Any]]) -> np.ndarray:
        """MediaPipe's four outputs (locations y1 x1 y2 x2, classes, scores, count) -> [N, K, 6] rows."""
        if len(arrays) == 1:
            return arrays[0]
        by_name = {_output_role(detail["name"]): array for detail, array in zip(details, arrays)}
        locations, classes, scores = by_name["locations"], by_name["classes"], by_name["scores"]
        boxes = locations[..., [1, 0, 3, 2]]  # y1 x1 y2 x2 -> x1 y1 x2 y2
        return np.concatenate([boxes, scores[..., None], classes[..., None]], axis=-1).astype(np.float32)

    def finish(self, batch: Any, outputs: np.ndarray) -> np.ndarray:
        """Boxes as fractions of the image -> the photo's own pixels (x by its width, y by its height)."""
        outputs = np.array(outputs, np.float32, copy=True)
        sizes = np.asarray(batch["sizes"], np.float32)  # (height, width)
        scale = np.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=1)[:, None, :]
        outputs[..., :4] *= scale
        return outputs

    # --- outputs ------------------------------------------------------------------------------
    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        """Boxes above min_score after class-wise NMS, best first, at most max_boxes (top_k is for classifiers)."""
        kept = select_detections(output, self.min_score, self.nms_iou, self.max_boxes)
        rnd = (lambda value: round(float(value), digits)) if digits is not None else float
        boxes = [{"label": class_names[int(row[5])], "score": rnd(row[4]),
                  "box": [round(float(v), 1) for v in row[:4]]} for row in kept]
        best = boxes[0] if boxes else {"label": None, "score": None}
        return {"label": best["label"], "score": best["score"], "count": len(boxes), "top": boxes}

    def answer(self, output: np.ndarray, class_names: list[str], top_k: int) -> dict[str, Any]:
        return self.describe(output, class_names, top_k)

    def console_text(self, row: dict[str, Any]) -> str:
        """Each kept box: its label, score and " at (x1, y1, x2, y2)" in the photo's pixels."""
        return ", ".join(f"{item['label']} {item['score']:.3f} at (" + ", ".join(f"{v:.0f}" for v in item["box"]) + ")"
                         for item in row["top"])

    def score(self, labels: Sequence[Any], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        """COCO mAP against the annotated boxes, from every box the model keeps after class-wise NMS (COCO's way:
        no score threshold), with precision and recall at this task's min_score (what `dlpipe predict` keeps)."""
        from dlpipe.models.tasks.detect.metrics import MAX_DETECTIONS, detection_report

        kept = [select_detections(row, 0.0, self.nms_iou, min(self.max_boxes, MAX_DETECTIONS)) for row in outputs]
        return detection_report(labels, kept, class_names, self.min_score)

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        low, high = report["map_interval"] or (report["map"], report["map"])
        at = report["min_score"]
        precision, recall = report["precision_at_min_score"], report["recall_at_min_score"]
        lines = [f"mAP {report['map']:.4f} (95% interval {low:.3f}-{high:.3f}), AP50 {report['ap50']:.4f}, "
                 f"AP75 {report['ap75']:.4f} on {report['count']} photos, {report['objects']} objects",
                 f"at min score {at:g}: precision " + (f"{precision:.3f}" if precision is not None else "-")
                 + ", recall " + (f"{recall:.3f}" if recall is not None else "-")]
        lines += [f"  {name}: AP {scores['ap']:.3f}, AP50 {scores['ap50']:.3f} ({scores['objects']} object{'s' if scores['objects'] != 1 else ''})"
                  for name, scores in report["per_class"].items()]
        return lines

    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """How many of the reference's boxes (after thresholds and NMS) the export finds: same label, IoU >= 0.5.

        `top1_agreement` is that fraction (what `choose_artifact` compares), `mean_box_iou` the mean IoU of
        each reference box with its best same-label box in the export.
        """
        found, ious, total = 0, [], 0
        for ref_row, out_row in zip(np.asarray(reference), np.asarray(outputs)):
            ref = select_detections(ref_row, self.min_score, self.nms_iou, self.max_boxes)
            out = select_detections(out_row, self.min_score * 0.5, self.nms_iou, self.max_boxes)
            for box in ref:
                total += 1
                same = out[out[:, 5] == box[5]]
                best = float(box_iou(box[None, :4], same[:, :4]).max()) if len(same) else 0.0
                ious.append(best)
                found += best >= 0.5
        # no reference box to look for: nothing was compared, so the export is unchecked (None), never faithful
        return {"top1_agreement": found / total if total else None,
                "mean_box_iou": float(np.mean(ious)) if ious else None, "boxes": total, "count": int(len(reference))}

    def output_writer(self, out: Path | None, inputs: InputSet, draw: Path | None = None) -> "BoxDrawer | None":
        """With --draw DIR, each photo with its kept boxes drawn; rows only otherwise."""
        return BoxDrawer(draw, out) if draw is not None else None


class BoxDrawer:
    """`--draw DIR` of a detection job: DIR/<input path>.jpg with the boxes its row keeps, named in the row."""

    def __init__(self, folder: Path, rows_file: Path | None):
        self.folder, self.rows_file = folder, rows_file

    def write(self, key: str, payload: Any, output: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
        from dlpipe.models.tasks.detect.drawing import draw_boxes

        return {"drawing": str(draw_boxes(payload, fields["top"], self.folder))}


def _output_role(name: str) -> str:
    for role in ("locations", "classes", "scores", "count"):
        if role in name:
            return role
    return name


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of every box in `boxes` (M, 4: x1 y1 x2 y2) with every box in `others` (K, 4) -> (M, K)."""
    boxes, others = np.asarray(boxes, np.float64), np.asarray(others, np.float64)
    x1 = np.maximum(boxes[:, None, 0], others[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], others[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], others[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], others[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    union = area(boxes)[:, None] + area(others)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def select_detections(rows: np.ndarray, min_score: float, nms_iou: float, max_boxes: int) -> np.ndarray:
    """Rows (K, 6) with score >= min_score, greedy class-wise NMS at `nms_iou`, best first, at most `max_boxes`."""
    rows = np.asarray(rows, np.float32).reshape(-1, 6)
    rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 4] >= min_score)]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    kept: list[np.ndarray] = []
    for row in rows:
        if len(kept) >= max_boxes:
            break
        same = [k for k in kept if k[5] == row[5]]
        if nms_iou < 1.0 and same and box_iou(row[None, :4], np.stack(same)[:, :4]).max() > nms_iou:
            continue
        kept.append(row)
    return np.stack(kept) if kept else np.zeros((0, 6), np.float32)


__all__ = ["BoxDrawer", "DetectPreprocessing", "DetectTask", "box_iou", "select_detections"]


TASK = DetectTask  # registered by dlpipe.models.tasks.TASK_MODULES
