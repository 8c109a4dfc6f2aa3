"""Benchmark: a detector trained at 320 px, evaluated at other sizes, with and without a mirrored pass (issue 28).

One command, from the repository root with the venv active:

    python bench/detection_inference_size.py RUN [RUN ...] [--sizes 320,384,416,448]

For each run (a `dlpipe run detect` folder, e.g. the five folds of `bench/detection_train.py`): the trained network
(model.keras) rebuilt at each size with the same weights (`at_input_size`, what `model.inference_scale` ships), its
validation photos (the ones metrics.json lists) through dlpipe's own input code at that size, decoded with box
voting, class-wise NMS as `dlpipe evaluate` applies it, and the same COCO scorer; "+flip" also averages the head map
of the mirrored photo (mirrored back, its left and right distances swapped), test-time augmentation that no
artifact ships. Pooled over every run's photos as `train.cv_folds` pools them.

Results: bench/results/detection_inference_size.json; BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def head_maps(run: Path, size: int, photos: list[str], classes: int) -> list[tuple[dict, object, object]]:
    """Per batch: the prepared batch, the head map, and the mirrored photo's head map mirrored back."""
    import keras
    import numpy as np

    from dlpipe.models.detector import at_input_size
    from dlpipe.models.tasks import InputSet, get_task

    task = get_task("detect")
    task.register_layers()
    prep = task.preprocessing_from_dict({**json.loads((run / "preprocessing.json").read_text()), "image_size": size})
    model = at_input_size(keras.models.load_model(run / "model.keras", compile=False), size)
    network = keras.Model(model.input, model.get_layer("head").output)
    inputs = InputSet()
    for photo in photos:
        inputs.add(photo, photo)
    maps = []
    for prepared in task.batches(inputs, prep, 16):
        pixels = np.asarray(prepared.batch["pixels"], np.float32)
        mirrored = network.predict_on_batch(pixels[:, :, ::-1])[:, :, ::-1].copy()
        mirrored[..., [classes, classes + 2]] = mirrored[..., [classes + 2, classes]]  # left <-> right distances
        maps.append((prepared.batch, network.predict_on_batch(pixels), mirrored))
    return maps


def rows_of(run: Path, sizes: list[int]) -> tuple[list, dict[str, list], list[str]]:
    """The run's validation truth and, per variant ("416", "416+flip", ...), each photo's kept boxes."""
    from dlpipe.data.box_annotations import BoxLabel
    from dlpipe.models.detector import VOTE_WINDOW, CenterNetDecode
    from dlpipe.models.tasks import get_task
    from dlpipe.models.tasks.detect import select_detections

    task = get_task("detect")
    metrics = json.loads((run / "metrics.json").read_text())
    names, predictions = metrics["class_names"], metrics["predictions"]
    truth = [[BoxLabel(t[0], tuple(t[1:5]), bool(t[5])) for t in photo] for photo in predictions["truth"]]
    decode = CenterNetDecode(len(names), 100, VOTE_WINDOW)
    variants: dict[str, list] = {}
    for size in sizes:
        maps = head_maps(run, size, predictions["inputs"], len(names))
        for name, merge in ((f"{size}", lambda h, m: h), (f"{size}+flip", lambda h, m: (h + m) / 2)):
            rows = variants.setdefault(name, [])
            for batch, head, mirrored in maps:
                found = task.finish(batch, decode(merge(head, mirrored)).numpy())
                rows += [select_detections(r, 0.001, task.nms_iou, task.max_boxes) for r in found]
    return truth, variants, names


def summary(truth: list, rows: list, names: list[str], resamples: int) -> dict:
    from dlpipe.models.tasks.detect.metrics import detection_report

    report = detection_report(truth, rows, names, 0.3, resamples=resamples)
    return {**{key: round(report[key], 4) for key in ("map", "ap50", "ap75")},
            "map_interval": [round(v, 4) for v in report["map_interval"]],
            "ap50_interval": [round(v, 4) for v in report["ap50_interval"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sizes", default="320,384,416,448")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    per_run, pooled_truth, pooled_rows = {}, [], {}
    for run in args.runs:
        truth, variants, names = rows_of(run, sizes)
        per_run[str(run)] = {name: summary(truth, rows, names, 100) for name, rows in variants.items()}
        print(run, {name: (s["map"], s["ap50"]) for name, s in per_run[str(run)].items()}, flush=True)
        pooled_truth += truth
        for name, rows in variants.items():
            pooled_rows.setdefault(name, []).extend(rows)
    pooled = {name: summary(pooled_truth, rows, names, 300) for name, rows in pooled_rows.items()}
    for name, s in pooled.items():
        print(f"pooled {name}: mAP {s['map']:.3f} {s['map_interval']}, AP50 {s['ap50']:.3f} {s['ap50_interval']}, "
              f"AP75 {s['ap75']:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "detection_inference_size.json"
    command = "python bench/detection_inference_size.py " + " ".join(map(str, args.runs)) + f" --sizes {args.sizes}"
    out.write_text(json.dumps({"date": date.today().isoformat(), "command": command, "pooled": pooled,
                               "runs": per_run}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
