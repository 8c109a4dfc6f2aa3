"""`dlpipe check-device` for detectors: does MediaPipe's ObjectDetector find the boxes the run's model finds?

The reference is the Keras model's rows on the raw photos through dlpipe's own preprocessing: the boxes
`dlpipe predict` keeps (min_score, class-wise NMS, max_boxes), in each photo's pixels. A reference box is
found when MediaPipe (Python, or the `web` page in Chromium) has a box of the same label with IoU >= 0.9.
MediaPipe reports whole pixels (origin and size truncated), so each reference box is put in that form before
the IoU: a 12-pixel box would otherwise lose up to 0.15 of IoU to the rounding alone. MediaPipe is asked for
boxes down to half of min_score, so a box whose score moves a little across the threshold is still found
(as the export-time parity does); its boxes at or above min_score, after the same NMS, that overlap none of the
Keras model's boxes down to half of min_score (IoU >= 0.5, same label) are counted as extra. When the photos have
box labels (COCO, VOC or YOLO, as `dlpipe evaluate` reads them), MediaPipe is asked for every box and the report
adds the mAP and AP50 of both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MATCH_IOU = 0.9  # a reference box is found at this IoU (the criterion)
EXTRA_IOU = 0.5  # a MediaPipe box overlapping no reference box this much is extra


def box_reference(runtime: Any, inputs: Any, labels: dict[str, Any] | None, skipped: list[dict],
                  data: str) -> dict[str, Any]:
    """The Keras model's boxes on each readable photo: the rows `dlpipe predict` keeps ("answers") and all its rows
    ("outputs", for mAP when `labels` holds each photo's annotated objects)."""
    from dlpipe.errors import DataError

    task, answers, outputs = runtime.task, {}, {}
    skipped = [*skipped, *({"path": key, "reason": reason} for key, reason in inputs.errors.items())]
    for prepared in task.batches(inputs, runtime.preprocessing, 8):
        skipped += [{"path": key, "reason": reason} for key, reason in prepared.errors.items()]
        if prepared.readable:
            found = np.asarray(runtime.predict(prepared.batch))  # boxes already in each photo's pixels
            for key, rows in zip(prepared.readable, found):
                answers[key], outputs[key] = _kept(task, rows, runtime.class_names), rows
    if not answers:
        raise DataError(data, "holds no readable photos to check on")
    select = thresholds(task)
    # MediaPipe's boxes down to half of min_score, so one whose score moves a little is still found; all of them
    # for mAP
    return {"task": "detect", "class_names": runtime.class_names, "answers": answers, "outputs": outputs,
            "labels": labels, "payloads": {key: str(inputs.payloads[key]) for key in answers}, "skipped": skipped,
            "thresholds": select, "score_threshold": 0.0 if labels is not None else select["min_score"] * 0.5}


def _kept(task: Any, rows: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """The boxes `dlpipe predict` keeps, unrounded (its rows round to 0.1 px, which moves a whole-pixel edge)."""
    from dlpipe.models.tasks.detect import select_detections

    kept = select_detections(rows, task.min_score, task.nms_iou, task.max_boxes)
    return [{"label": names[int(row[5])], "score": float(row[4]), "box": [float(value) for value in row[:4]]}
            for row in kept]


def thresholds(task: Any) -> dict[str, Any]:
    """The reference task's selection, kept in the report (compare applies it to MediaPipe's boxes too)."""
    return {"min_score": task.min_score, "nms_iou": task.nms_iou, "max_boxes": task.max_boxes}


def whole_pixels(box: list[float]) -> list[float]:
    """A box as MediaPipe's BoundingBox holds it: origin and size truncated to whole pixels."""
    x1, y1 = math.floor(box[0]), math.floor(box[1])
    return [x1, y1, x1 + math.floor(box[2] - box[0]), y1 + math.floor(box[3] - box[1])]


def compare_boxes(reference: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One file's figures: the share of reference boxes MediaPipe finds (same label, IoU >= 0.9), the mean best
    IoU, MediaPipe's extra boxes, and per photo the boxes it missed (with its closest box) or added."""
    from dlpipe.models.tasks.detect import box_iou

    names, select = reference["class_names"], reference["thresholds"]
    found, ious, extra, disagree, failed = 0, [], 0, [], []
    for key, answer in zip(reference["answers"], answers):
        if "error" in answer:
            failed.append({"input": key, "error": answer["error"]})
            continue
        ours, theirs = reference["answers"][key], _selected(answer["boxes"], names, select)
        missed = []
        for box in ours:
            same = [item for item in theirs if item["label"] == box["label"]]
            overlaps = box_iou(np.array([whole_pixels(box["box"])]), np.array([item["box"] for item in same]).reshape(
                -1, 4))[0]
            best = int(np.argmax(overlaps)) if len(same) else None
            iou = float(overlaps[best]) if best is not None else 0.0
            ious.append(iou)
            found += iou >= MATCH_IOU
            if iou < MATCH_IOU:
                missed.append({**box, "iou": round(iou, 3), "mediapipe": same[best] if best is not None else None})
        loose = _selected_rows(reference["outputs"][key], names, select)  # the Keras model's, down to min_score / 2
        added = [item for item in theirs if item["score"] >= select["min_score"] and not _overlaps(item, loose)]
        extra += len(added)
        if missed or added:
            disagree.append({"input": key, "missed": missed, "extra": added})
    answered = len(reference["answers"]) - len(failed)
    result = {"inputs": len(reference["answers"]), "answered": answered, "boxes": len(ious),
              "box_agreement": found / len(ious) if ious else None,
              "mean_box_iou": float(np.mean(ious)) if ious else None, "extra_boxes": extra}
    if reference["labels"] is not None and answered:
        result.update(_maps(reference, answers))
    return {**result, "disagreements": disagree, "unanswered": failed}


def _maps(reference: dict[str, Any], answers: list[dict[str, Any]]) -> dict[str, float]:
    """COCO mAP and AP50 of the Keras model's and of MediaPipe's boxes on the photos MediaPipe answered, scored
    as `dlpipe evaluate` scores (class-wise NMS, no threshold)."""
    from dlpipe.models.tasks.detect import DetectTask

    task, names = DetectTask(**reference["thresholds"]), reference["class_names"]
    index = {name: position for position, name in enumerate(names)}
    keys = [key for key, answer in zip(reference["answers"], answers) if "error" not in answer]
    theirs = [np.array([[*item["box"], item["score"], index[item["label"]]] for item in answer["boxes"]
                        if item["label"] in index], np.float32).reshape(-1, 6)
              for answer in answers if "error" not in answer]
    truth = [reference["labels"][key] for key in keys]
    ours = task.score(truth, [reference["outputs"][key] for key in keys], names)
    mediapipe = task.score(truth, theirs, names)
    return {"keras_map": ours["map"], "mediapipe_map": mediapipe["map"], "keras_ap50": ours["ap50"],
            "mediapipe_ap50": mediapipe["ap50"]}


def _selected(boxes: list[dict[str, Any]], names: list[str], select: dict[str, Any]) -> list[dict[str, Any]]:
    """MediaPipe's boxes down to half of min_score after the reference's class-wise NMS and box limit."""
    index = {name: position for position, name in enumerate(names)}
    rows = np.array([[*item["box"], item["score"], index.get(item["label"], -1)] for item in boxes], np.float32)
    return [{**item, "score": round(item["score"], 4), "box": [int(value) for value in item["box"]]}
            for item in _selected_rows(rows, names, select)]


def _selected_rows(rows: np.ndarray, names: list[str], select: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows [K, 6] down to half of min_score after class-wise NMS and the box limit, as {"label", "score", "box"}."""
    from dlpipe.models.tasks.detect import select_detections

    kept = select_detections(np.asarray(rows, np.float32).reshape(-1, 6), select["min_score"] * 0.5,
                             select["nms_iou"], select["max_boxes"])
    return [{"label": names[int(row[5])] if row[5] >= 0 else "?", "score": float(row[4]),
             "box": [float(value) for value in row[:4]]} for row in kept]


def _overlaps(item: dict[str, Any], ours: list[dict[str, Any]]) -> bool:
    from dlpipe.models.tasks.detect import box_iou

    same = [whole_pixels(box["box"]) for box in ours if box["label"] == item["label"]]
    return bool(same) and float(box_iou(np.array([item["box"]]), np.array(same)).max()) >= EXTRA_IOU


def summary_lines(runtime: str, files: dict[str, Any], shown: int) -> list[str]:
    """A line per file (boxes found, mean IoU, extra boxes), then up to `shown` photos with what differs."""
    lines = []
    for name, figures in files.items():
        if "error" in figures:
            lines.append(f"{name}: {runtime} refused the file: {figures['error']}")
            continue
        share = figures["box_agreement"]
        line = (f"{name}: {runtime} finds {'-' if share is None else f'{share:.1%}'} of the Keras model's "
                f"{figures['boxes']} boxes (same label, IoU >= {MATCH_IOU}) on {figures['answered']} photos")
        if figures["mean_box_iou"] is not None:
            line += f", mean IoU {figures['mean_box_iou']:.3f}"
        line += f"; {figures['extra_boxes']} extra box{'es' if figures['extra_boxes'] != 1 else ''}"
        if "keras_map" in figures:
            line += (f"; mAP Keras {figures['keras_map']:.3f}, {runtime.split(' in ')[0]} "
                     f"{figures['mediapipe_map']:.3f} (AP50 {figures['keras_ap50']:.3f}, "
                     f"{figures['mediapipe_ap50']:.3f})")
        if figures["unanswered"]:
            first = figures["unanswered"][0]
            line += (f"; {len(figures['unanswered'])} photos it could not read (first: {first['input']}: "
                     f"{first['error']})")
        lines.append(line)
        for row in figures["disagreements"][:shown]:
            missed = ", ".join(f"{box['label']} {box['score']:.2f} (IoU {box['iou']:.2f})" for box in row["missed"])
            added = ", ".join(f"{box['label']} {box['score']:.2f}" for box in row["extra"])
            lines.append(f"  {row['input']}: " + "; ".join(part for part in (
                f"missed {missed}" if missed else "", f"extra {added}" if added else "") if part))
        if len(figures["disagreements"]) > shown:
            lines.append(f"  ... {len(figures['disagreements']) - shown} more in the report")
    return lines
