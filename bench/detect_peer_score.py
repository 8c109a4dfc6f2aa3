"""Scores the detection peer's predictions (bench/detect_peer_yolo.py) with dlpipe's own reader and scorer.

Runs in the main .venv (dlpipe and pycocotools are there; the peer's venv has neither), so the peer's mAP and
AP50 come from the same code as `dlpipe evaluate`'s: read_coco_annotations for the truth and
dlpipe.models.tasks.detect.metrics.detection_report (pycocotools, 95% intervals by bootstrap over photos).

    .venv/bin/python bench/detect_peer_score.py --data DATA FOLD.json [FOLD.json ...]   # JSON on stdout

Each FOLD.json holds the held-out photos' file names, the class names in the model's order and per photo the
rows x1 y1 x2 y2 score class (photo pixels). With more than one file, the photos of all of them are also scored
as one set ("pooled": the out-of-fold predictions of the whole data set).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from dlpipe.data.box_annotations import read_coco_annotations
from dlpipe.models.tasks.detect.metrics import detection_report

MIN_SCORE = 0.3  # dlpipe's default operating threshold (precision/recall there); mAP uses every box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("predictions", nargs="+")
    args = parser.parse_args()
    truth = read_coco_annotations(args.data)
    objects_of = {Path(photo).name: objects for photo, objects in zip(truth.images, truth.objects)}
    folds, all_truth, all_rows, names = [], [], [], None
    for path in args.predictions:
        fold = json.loads(Path(path).read_text())
        names = fold["class_names"]
        if {o.label for objs in truth.objects for o in objs} - set(names):
            raise SystemExit(f"{path}: class names {names} do not match {args.data}")
        fold_truth = [objects_of[name] for name in fold["images"]]
        rows = [np.asarray(r, np.float32).reshape(-1, 6) for r in fold["rows"]]
        folds.append(detection_report(fold_truth, rows, names, MIN_SCORE))
        all_truth += fold_truth
        all_rows += rows
    pooled = detection_report(all_truth, all_rows, names, MIN_SCORE) if len(folds) > 1 else None
    print(json.dumps({"folds": folds, "pooled": pooled, "metric": folds[0]["metric"]}))


if __name__ == "__main__":
    main()
