"""COCO mAP through pycocotools, and dlpipe's photo-bootstrap that re-accumulates its matches."""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.data.box_annotations import BoxLabel
from dlpipe.models.tasks.detect import metrics as detection_metrics
from dlpipe.models.tasks.detect import DetectTask

NAMES = ["dog", "cat", "bird"]


def scene(seed: int, photos: int = 25) -> tuple[list[list[BoxLabel]], list[np.ndarray]]:
    """Objects and noisy detections of them (some missed), plus low-scoring boxes on nothing."""
    rng = np.random.default_rng(seed)
    truth, predicted = [], []
    for _ in range(photos):
        objects, rows = [], []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 300, 2)
            w, h = rng.uniform(20, 150, 2)
            label = int(rng.integers(0, 3))
            objects.append(BoxLabel(NAMES[label], (x, y, x + w, y + h), bool(rng.random() < 0.05)))
            if rng.random() < 0.8:
                noise = rng.normal(0, 4, 4)
                rows.append([x + noise[0], y + noise[1], x + w + noise[2], y + h + noise[3], rng.uniform(0.3, 1), label])
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 300, 2)
            rows.append([x, y, x + 40, y + 40, rng.uniform(0, 0.6), int(rng.integers(0, 3))])
        truth.append(objects)
        predicted.append(np.asarray(rows, np.float32).reshape(-1, 6))
    return truth, predicted


def test_the_bootstrap_accumulation_is_pycocotools_own_when_every_photo_counts_once():
    truth, predicted = scene(1)
    evaluator = detection_metrics._coco_eval(truth, predicted, NAMES)
    matches = detection_metrics._class_matches(evaluator)
    ours = detection_metrics._average_precision(matches, np.ones(len(truth)), np.linspace(0, 1, 101))
    np.testing.assert_allclose(ours, evaluator.stats[:2], atol=1e-12)
    report = detection_metrics.detection_report(truth, predicted, NAMES, min_score=0.3)
    assert report["map"] == evaluator.stats[0] and 0.2 < report["map"] < 0.95
    low, high = report["map_interval"]
    assert low < report["map"] < high and high - low < 0.5
    assert set(report["per_class"]) == {obj.label for photo in truth for obj in photo}


def test_perfect_boxes_score_one_and_missed_or_wrong_ones_score_less():
    truth = [[BoxLabel("dog", (10, 10, 110, 90))], [BoxLabel("cat", (50, 40, 150, 160)), BoxLabel("dog", (0, 0, 30, 30))]]
    perfect = [np.array([[10, 10, 110, 90, 0.9, 0]]), np.array([[50, 40, 150, 160, 0.8, 1], [0, 0, 30, 30, 0.7, 0]])]
    report = detection_metrics.detection_report(truth, perfect, NAMES, min_score=0.5)
    assert report["map"] == 1.0 and report["map_interval"] == [1.0, 1.0]
    assert report["precision_at_min_score"] == 1.0 and report["recall_at_min_score"] == 1.0
    wrong_label = [perfect[0], np.array([[50, 40, 150, 160, 0.8, 2], [0, 0, 30, 30, 0.7, 0]])]
    worse = detection_metrics.detection_report(truth, wrong_label, NAMES, min_score=0.5)
    assert worse["per_class"]["cat"]["ap"] == 0.0 and worse["per_class"]["dog"]["ap"] == 1.0
    assert worse["recall_at_min_score"] == 2 / 3 and worse["precision_at_min_score"] == 2 / 3
    nothing = detection_metrics.detection_report(truth, [np.zeros((0, 6))] * 2, NAMES, min_score=0.5)
    assert nothing["map"] == 0.0 and nothing["recall_at_min_score"] == 0.0 and nothing["objects"] == 3


def test_unknown_categories_are_refused_with_the_nearest_model_label():
    from dlpipe.errors import DataError

    with pytest.raises(DataError, match=r"motorbike -> motorcycle\?"):
        DetectTask().check_labels([[BoxLabel("motorbike", (0, 0, 5, 5))]], ["person", "motorcycle"], "coco.json")
