"""The multi-label image task: a photo in, the SET of labels it shows out (any number, none included).

Inputs are read and prepared exactly as the image task's (the same `dlpipe.data.preprocess` code as
training). Outputs are one score per label with each label's threshold folded into the model
(`layers.fold_thresholds`), so a label is on when its score is at least 0.5, in Keras, SavedModel, TFLite,
MediaPipe (its metadata's global threshold is 0.5) and the browser alike. Labelled data for `dlpipe
evaluate` is a CSV of `path,labels` (labels separated by `;`) or a COCO annotations JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import InputSet, LabelledData
from dlpipe.models.tasks.image import ImageTask

DECISION_THRESHOLD = 0.5  # every label's, once its own threshold is folded into the model


class MultiLabelTask(ImageTask):
    """Images -> per-label scores (N, labels); a label is on at score >= 0.5."""

    name = "multilabel"
    exporters_module = "dlpipe.models.tasks.multilabel.export"
    headline_metric = "micro_f1"
    description = "multi-label image classification: each photo has any set of labels (CSV path,labels or COCO JSON)"

    def register_layers(self) -> None:
        from dlpipe.models.tasks.multilabel import layers  # noqa: F401  (registers ThresholdShift)

    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        """The labels that are on (best first) and every label's score."""
        scores = np.asarray(output, np.float64).reshape(-1)
        order = np.argsort(-scores)
        rnd = (lambda value: round(float(value), digits)) if digits is not None else float
        on = [class_names[i] for i in order if scores[i] >= DECISION_THRESHOLD]
        return {"labels": on, "scores": {class_names[i]: rnd(scores[i]) for i in order}}

    def answer(self, output: np.ndarray, class_names: list[str], top_k: int) -> dict[str, Any]:
        return self.describe(output, class_names, top_k)

    def console_text(self, row: dict[str, Any]) -> str:
        shown = ", ".join(f"{name} {score:.3f}" for name, score in row["scores"].items())
        return f"{{{', '.join(row['labels'])}}} ({shown})"

    def labelled_data(self, path: Path) -> LabelledData:
        """A CSV of path,labels or a COCO annotations JSON (or its folder)."""
        from dlpipe.data.images import display_name
        from dlpipe.data.multilabel import read_multilabel

        data = read_multilabel(path, verify=False)
        inputs = InputSet()
        for item in data.paths:
            inputs.add(display_name(item), item)
        return LabelledData(inputs, [list(labels) for labels in data.labels],
                            [{"path": item, "reason": reason} for item, reason in data.skipped])

    def label_name(self, label: Any, class_names: list[str]) -> list[str]:
        """A multi-hot training label as the names of its labels that are on."""
        return [name for name, on in zip(class_names, label) if on]

    def check_labels(self, labels: Sequence[Any], class_names: list[str], data: str) -> None:
        unknown = sorted({name for names in labels for name in names} - set(class_names))
        if unknown:
            raise DataError(data, f"labels {unknown} are not among the model's labels {class_names}")

    def score(self, labels: Sequence[Any], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        """mAP, micro and macro F1 at the folded thresholds (0.5), with intervals, and per label."""
        from dlpipe.data.multilabel import multi_hot
        from dlpipe.models.multilabel_metrics import multilabel_report

        thresholds = np.full(len(class_names), DECISION_THRESHOLD)
        return multilabel_report(multi_hot(labels, class_names), np.asarray(outputs), thresholds, class_names)

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        return summary_lines(report)

    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        """Per-label decision agreement and the largest score difference; None when nothing was compared."""
        reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
        if not reference.size:
            return {"decision_agreement": None, "top1_agreement": None, "max_abs_diff": None, "count": 0}
        same = (reference >= DECISION_THRESHOLD) == (outputs >= DECISION_THRESHOLD)
        # top1_agreement (what --artifact auto compares): the share of photos whose whole label set is the same
        return {"decision_agreement": float(np.mean(same)), "top1_agreement": float(np.mean(same.all(axis=1))),
                "max_abs_diff": float(np.max(np.abs(reference - outputs))), "count": int(len(reference))}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A multi-label report as lines: mAP and F1 with their intervals, then each label."""

    def interval(key: str) -> str:
        bounds = report.get(f"{key}_interval")
        return f" ({bounds[0]:.3f}-{bounds[1]:.3f})" if bounds else ""

    head = report["map"]
    lines = [f"mAP {head:.4f}{interval('map')}, micro F1 {report['micro_f1']:.4f}{interval('micro_f1')}, "
             f"macro F1 {report['macro_f1']:.4f}{interval('macro_f1')} on {report['count']} photos (95% intervals)"
             if head is not None else f"micro F1 {report['micro_f1']:.4f} on {report['count']} photos"]
    for name, label in report["per_label"].items():
        ap = f"AP {label['ap']:.3f}, " if label["ap"] is not None else ""
        lines.append(f"  {name}: {ap}precision {label['precision']:.3f} recall {label['recall']:.3f} "
                     f"f1 {label['f1']:.3f} ({label['support']} photos)")
    return lines


TASK = MultiLabelTask  # registered by dlpipe.models.tasks.TASK_MODULES
