"""Benchmark: box voting in the detector's decoding, on trained runs' own validation photos (issue 28).

One command, from the repository root with the venv active:

    python bench/detection_voting.py RUN [RUN ...]

For each run (a `dlpipe run detect` folder with model.keras and metrics.json): its network's head map on the
validation photos metrics.json lists (decoded and stretched by dlpipe's own input code), decoded twice by
`CenterNetDecode`, with the peak cell's own box (vote_window 1, the decoding before box voting) and with box voting
(the 3x3 window every run now exports), then class-wise NMS as `dlpipe evaluate` applies it and the same COCO scorer.

Results: bench/results/detection_voting.json; BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def head_maps(run: Path, photos: list[str]) -> tuple[object, object]:
    """The network's head map for each photo, and the photos' prepared batch (sizes, for scaling the boxes)."""
    import keras
    import numpy as np

    from dlpipe.models.tasks import InputSet, get_task

    task = get_task("detect")
    task.register_layers()
    prep = task.preprocessing_from_dict(json.loads((run / "preprocessing.json").read_text()))
    model = keras.models.load_model(run / "model.keras", compile=False)
    network = keras.Model(model.input, model.get_layer("head").output)
    inputs = InputSet()
    for photo in photos:
        inputs.add(photo, photo)
    heads, batches = [], []
    for prepared in task.batches(inputs, prep, 16):
        heads.append(network.predict_on_batch(np.asarray(prepared.batch["pixels"], np.float32)))
        batches.append(prepared.batch)
    return task, list(zip(heads, batches))


def score(run: Path) -> dict:
    from dlpipe.data.box_annotations import BoxLabel
    from dlpipe.models.detector import VOTE_WINDOW, CenterNetDecode
    from dlpipe.models.tasks.detect import select_detections
    from dlpipe.models.tasks.detect.metrics import detection_report

    metrics = json.loads((run / "metrics.json").read_text())
    names, predictions = metrics["class_names"], metrics["predictions"]
    truth = [[BoxLabel(t[0], tuple(t[1:5]), bool(t[5])) for t in photo] for photo in predictions["truth"]]
    task, batches = head_maps(run, predictions["inputs"])
    result = {"run": str(run), "photos": len(truth)}
    for name, window in (("peak_box", 1), ("box_voting", VOTE_WINDOW)):
        decode = CenterNetDecode(len(names), 100, window)
        rows = []
        for head, batch in batches:
            found = task.finish(batch, decode(head).numpy())
            rows += [select_detections(r, 0.001, task.nms_iou, task.max_boxes) for r in found]
        report = detection_report(truth, rows, names, 0.3, resamples=300)
        result[name] = {key: round(report[key], 4) for key in ("map", "ap50", "ap75")}
        result[name]["map_interval"] = [round(v, 4) for v in report["map_interval"]]
    return result


def main() -> None:
    runs = [Path(arg) for arg in sys.argv[1:]]
    if not runs:
        sys.exit("usage: python bench/detection_voting.py RUN [RUN ...]")
    results = []
    for run in runs:
        results.append(score(run))
        row = results[-1]
        print(f"{run}: peak box mAP {row['peak_box']['map']:.3f} AP50 {row['peak_box']['ap50']:.3f} AP75 "
              f"{row['peak_box']['ap75']:.3f}; box voting mAP {row['box_voting']['map']:.3f} AP50 "
              f"{row['box_voting']['ap50']:.3f} AP75 {row['box_voting']['ap75']:.3f}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "detection_voting.json"
    out.write_text(json.dumps({"date": date.today().isoformat(), "command": "python bench/detection_voting.py "
                                                                          + " ".join(sys.argv[1:]),
                               "runs": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
