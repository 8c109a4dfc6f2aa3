"""Detection benchmark: the coco-detector and its exports on darknet's sample photos, against hand-checked boxes.

    python bench/detection.py            # writes bench/results/detection.json and prints the BENCHMARKS.md table

Needs the converted detector (scripts/fetch_coco_detector.sh) and the Debian package darknet's photos.
For each artifact (the reference graph behind the named model, i.e. the Keras runtime; the SavedModel;
TFLite float32, float16 and dynamic-range int8; MediaPipe ObjectDetector on the float32 file when
.venv-mediapipe exists) it measures:
- recall of the hand-checked objects below: a labelled object counts as found when a box of the same
  label with IoU >= 0.5 is kept at the default thresholds (score >= 0.3, class-wise NMS at 0.5);
- boxes kept that match no hand-checked object ("unmatched": they may be real objects left out below);
- agreement with the reference graph (the task's parity: the fraction of the reference's kept boxes the
  export finds with the same label at IoU >= 0.5, and their mean IoU);
- COCO mAP (IoU 0.50:0.95) and AP50 against the hand-checked boxes, scored as `dlpipe evaluate` scores
  (pycocotools, every box kept after NMS; MediaPipe's are only those it returns, at score >= 0.3);
- images/s of the model call alone on the five photos (decoded and resized beforehand; the best of three).

Hand-checked boxes (x1, y1, x2, y2 in each photo's pixels), made by looking at each photo with the
detector's boxes drawn at score 0.2 (`dlpipe predict --draw`): where a drawn box fitted the object it was
kept (rounded), otherwise (missed or badly fitted objects) the box was read off the photo by eye. Labels are
COCO's. Objects too small to judge by eye (distant kites and surfers in kite.jpg, under ~25 px) and the red
scooter far behind the fence in dog.jpg are left out. The white pickup in dog.jpg is a COCO "truck".
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = Path("/usr/share/darknet/data")
HAND_CHECKED = {
    "dog.jpg": [("dog", [124, 207, 313, 542]), ("bicycle", [111, 125, 564, 445]), ("truck", [466, 76, 690, 170])],
    "horses.jpg": [("horse", [0, 192, 312, 412]), ("horse", [243, 196, 418, 368]), ("horse", [433, 211, 600, 346]),
                   ("horse", [292, 214, 456, 323]), ("horse", [0, 188, 150, 246])],
    "person.jpg": [("person", [187, 112, 276, 375]), ("dog", [67, 262, 201, 348]), ("horse", [398, 138, 602, 342])],
    "giraffe.jpg": [("giraffe", [165, 30, 448, 440]), ("zebra", [248, 205, 422, 428])],
    "kite.jpg": [("person", [107, 611, 165, 756]), ("person", [212, 695, 276, 848]), ("person", [79, 508, 106, 565]),
                 ("person", [24, 521, 48, 555]), ("person", [175, 541, 195, 573]), ("kite", [588, 80, 669, 155]),
                 ("kite", [275, 234, 305, 279])],
}


def match(rows: dict[str, dict], iou: float = 0.5) -> dict[str, float]:
    """Recall of HAND_CHECKED in `rows` (name -> described row) and the kept boxes that match nothing."""
    from dlpipe.models.tasks.detect import box_iou

    found = total = unmatched = 0
    for name, objects in HAND_CHECKED.items():
        kept = rows[name]["top"]
        used = set()
        for label, box in objects:
            total += 1
            candidates = [(i, float(box_iou(np.array([box]), np.array([k["box"]]))[0, 0]))
                          for i, k in enumerate(kept) if k["label"] == label and i not in used]
            best = max(candidates, key=lambda c: c[1], default=(None, 0.0))
            if best[1] >= iou:
                found += 1
                used.add(best[0])
        unmatched += len(kept) - len(used)
    return {"recall": found / total, "found": found, "objects": total, "unmatched_boxes": unmatched}


def coco_map(task, outputs: np.ndarray, names: list[str], class_names: list[str]) -> dict[str, float]:
    """COCO mAP / AP50 of `outputs` (rows in photo order `names`) against HAND_CHECKED, as `dlpipe evaluate` scores."""
    from dlpipe.data.box_annotations import BoxLabel

    truth = [[BoxLabel(label, tuple(map(float, box))) for label, box in HAND_CHECKED[name]] for name in names]
    report = task.score(truth, outputs, class_names)
    return {"map": report["map"], "map_interval": report["map_interval"], "ap50": report["ap50"]}


def timed(runtime, batch, repeats: int = 3) -> tuple[np.ndarray, float]:
    outputs = runtime.predict(batch)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        runtime.predict(batch)
        best = min(best, time.perf_counter() - started)
    return outputs, len(outputs) / best


def mediapipe(model: Path, paths: list[Path]) -> dict | None:
    python = ROOT / ".venv-mediapipe" / "bin" / "python"
    if not python.is_file():
        return None
    job = {"model": str(model), "images": [str(p) for p in paths], "score_threshold": 0.3}
    done = subprocess.run([str(python), str(ROOT / "tests" / "edge" / "mediapipe_detect_runner.py")],
                          input=json.dumps(job), capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}


def main() -> int:
    from dlpipe.models.coco_detector import missing_reason
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.exporting import export_named

    if missing_reason() or not (PHOTOS / "dog.jpg").is_file():
        print(missing_reason() or "install the Debian package darknet for its sample photos", file=sys.stderr)
        return 1
    paths = [PHOTOS / name for name in HAND_CHECKED]
    reference = load_runtime("coco-detector")
    task = reference.task
    inputs = task.collect_inputs([str(p) for p in paths])
    batch = next(iter(task.batches(inputs, reference.preprocessing, len(paths)))).batch
    names = [Path(key).name for key in inputs.ids]
    ref_out, ref_rate = timed(reference, batch)

    def rows_of(outputs: np.ndarray) -> dict[str, dict]:
        return {name: task.describe(row, reference.class_names, 0) for name, row in zip(names, outputs)}

    results = {"reference graph (named model, Keras runtime)": {**match(rows_of(ref_out)), "images_per_s": ref_rate,
                                                                **coco_map(task, ref_out, names, reference.class_names)}}
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in ("savedmodel", "tflite", "tflite-float16", "tflite-dynamic"):
            path = export_named("coco-detector", fmt, scratch, [str(p) for p in paths])
            runtime = load_runtime(path)
            out, rate = timed(runtime, batch)
            size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
            results[fmt] = {**match(rows_of(out)), "images_per_s": rate, "megabytes": size / 1e6,
                            "agreement": task.parity(ref_out, out), **coco_map(task, out, names, reference.class_names)}
            if fmt == "tflite":
                answer = mediapipe(path, paths)
                if answer and "error" not in answer:
                    rows = {name: {"top": found} for name, found in zip([p.name for p in paths], answer["detections"])}
                    mp_out = np.array([[[*d["box"], d["score"], reference.class_names.index(d["label"])] for d in found]
                                       + [[0, 0, 0, 0, -1, 0]] * (100 - len(found)) for found in answer["detections"]],
                                      np.float32)
                    order = [names.index(p.name) for p in paths]
                    results["MediaPipe ObjectDetector (float32 .tflite)"] = {
                        **match(rows), "images_per_s": 1.0 / answer["seconds"],
                        "agreement": task.parity(ref_out[order], mp_out),
                        **coco_map(task, mp_out, [p.name for p in paths], reference.class_names)}
                elif answer:
                    results["MediaPipe ObjectDetector (float32 .tflite)"] = {"error": answer["error"]}
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "photos": [p.name for p in paths],
              "hand_checked": HAND_CHECKED, "results": results}
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detection.json").write_text(json.dumps(report, indent=2))
    print("| artifact | recall @ IoU 0.5 | unmatched boxes | COCO mAP (95% interval) | AP50 | agreement with graph "
          "(boxes found, mean IoU) | images/s | MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error'][:80]} | | | | | | |")
            continue
        agree = r.get("agreement")
        agreement = ("reference" if not agree else "unchecked (the graph kept no box)" if agree["top1_agreement"] is None
                     else f"{agree['top1_agreement']:.0%} of {agree['boxes']}, {agree['mean_box_iou']:.3f}")
        size = f"{r['megabytes']:.1f}" if "megabytes" in r else ""
        low, high = r["map_interval"]
        print(f"| {name} | {r['recall']:.0%} ({r['found']}/{r['objects']}) | {r['unmatched_boxes']} | "
              f"{r['map']:.3f} ({low:.3f}-{high:.3f}) | {r['ap50']:.3f} | {agreement} | {r['images_per_s']:.1f} | {size} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
