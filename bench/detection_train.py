"""Benchmark: training a detector on your own boxes (issue 28) on the shared detection_fashion scenes.

One command, from the repository root with the venv active (after scripts/setup.sh):

    python bench/detection_train.py [--start efficientnet_lite0|centernet_coco] [--folds 5] [--set KEY=VALUE ...]
                                    [--exports] [--out DIR]
    python bench/detection_train.py --start centernet_coco --exports-of RUN [--formats tflite,tflite-int8] [--name N]

1. Cross-validation: `dlpipe run detect --data ../shared/data/detection_fashion --set train.cv_folds=K --set seed=0`
   (with the chosen start): fold k validates on the photos the peer benchmark (bench/detect_peer_yolo.py) uses,
   sorted(permutation[k::K]) of numpy's default_rng(0) over annotations.json's photo order. Reported: every
   fold's mAP / AP50 and training CPU-minutes (user + system time of the train stage, as report.json measures it),
   and the pooled mAP / AP50 over all 300 photos (each predicted by the fold model that did not train on it) with
   95% intervals over photos.
2. The final run (the same command's model trained on 240 photos, validated on 60) with `--exports`: every .tflite
   (float32, float16, dynamic, int8) and the SavedModel scored with `dlpipe evaluate` on the final run's 60
   validation photos, against the Keras model's own score on them.

Results: bench/results/detection_train_<start>.json; BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "detection_fashion"
RESULTS = ROOT / "bench" / "results"
EXPORTS = ("savedmodel", "tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")


def cross_validate(start: str, folds: int, sets: list[str], out: Path) -> dict:
    from dlpipe.pipelines import api

    started = time.perf_counter()
    result = api.run("detect", data=str(DATA), out=out, resume=(out / "config.yaml").is_file(),
                     sets=[f"model.encoder={start}", f"train.cv_folds={folds}", "seed=0", "train.progress=epochs",
                           "train.tensorboard=false", *(sets if not (out / "config.yaml").is_file() else [])])
    summary = json.loads((out / "cv.json").read_text())
    report = json.loads((out / "report.json").read_text())
    return {"summary": summary, "final_metrics": {k: result.metrics[k] for k in ("map", "ap50", "ap75", "count")},
            "final_train_cpu_minutes": round(report["stages"]["train"]["cpu_seconds"] / 60, 2),
            "wall_minutes": round((time.perf_counter() - started) / 60, 1)}


def score_exports(out: Path, formats: tuple[str, ...] = EXPORTS) -> dict:
    """Each export's mAP on the final run's validation photos next to the Keras model's."""
    from dlpipe.errors import DlpipeError
    from dlpipe.pipelines.evaluation import evaluate_artifact
    from dlpipe.pipelines.exporting import export_run

    metrics = json.loads((out / "metrics.json").read_text())
    with tempfile.TemporaryDirectory() as folder:
        labels = _validation_coco(metrics, Path(folder))
        scores = {"keras": _scores(evaluate_artifact(out / "model.keras", labels))}
        for fmt in formats:
            try:
                path = export_run(out, fmt, None)
            except DlpipeError as refused:  # e.g. int8 of the COCO start: the refusal is the result
                scores[fmt] = {"refused": str(refused)}
                continue
            size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
            scores[fmt] = {"file": path.name, "megabytes": round(size / 1e6, 2), **_scores(evaluate_artifact(path, labels))}
    return scores


def _scores(report: dict) -> dict:
    return {key: round(report[key], 4) for key in ("map", "ap50", "ap75")}


def _validation_coco(metrics: dict, folder: Path) -> Path:
    """A COCO JSON of the validation photos (linked into folder/images) with their boxes from metrics.json."""
    from PIL import Image

    names = metrics["class_names"]
    (folder / "images").mkdir()
    document = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}
    for index, (photo, objects) in enumerate(zip(metrics["predictions"]["inputs"], metrics["predictions"]["truth"])):
        link = folder / "images" / f"{index:04d}_{Path(photo).name}"
        link.symlink_to(Path(photo).resolve())
        width, height = Image.open(photo).size
        document["images"].append({"id": index, "file_name": link.name, "width": width, "height": height})
        for label, x1, y1, x2, y2, crowd in objects:
            document["annotations"].append({"id": len(document["annotations"]) + 1, "image_id": index,
                                            "category_id": names.index(label), "iscrowd": crowd,
                                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (folder / "annotations.json").write_text(json.dumps(document))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="efficientnet_lite0", choices=["efficientnet_lite0", "centernet_coco"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra --set KEY=VALUE for the run")
    parser.add_argument("--exports", action="store_true", help="also score every export of the final run")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a folder under /tmp)")
    parser.add_argument("--exports-of", type=Path, default=None,
                        help="only score the exports of this finished run (e.g. a fold's) on its validation photos")
    parser.add_argument("--formats", default=",".join(EXPORTS), help="with --exports-of: which exports to score")
    parser.add_argument("--name", default=None, help="with --exports-of: results file suffix (default: the start)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.exports_of:
        scores = score_exports(args.exports_of, tuple(args.formats.split(",")))
        (RESULTS / f"detection_exports_{args.name or args.start}.json").write_text(json.dumps(
            {"date": date.today().isoformat(), "run": str(args.exports_of), "exports": scores}, indent=1))
        for name, figures in scores.items():
            print(f"  {name}: {figures}")
        return
    out = args.out or Path(tempfile.gettempdir()) / f"dlpipe-bench-detect-{args.start}"
    results = {"date": date.today().isoformat(), "start": args.start, "folds": args.folds, "sets": args.sets,
               "command": "python bench/detection_train.py " + " ".join(
                   [f"--start {args.start}", f"--folds {args.folds}", *[f"--set {s}" for s in args.sets],
                    *(["--exports"] if args.exports else [])]),
               **cross_validate(args.start, args.folds, args.sets, out)}
    if args.exports:
        results["exports"] = score_exports(out)
    target = RESULTS / f"detection_train_{args.start}.json"
    target.write_text(json.dumps(results, indent=1))
    pooled = results["summary"]["pooled"]
    print(f"pooled mAP {pooled['map']:.3f} {pooled['map_interval']}, AP50 {pooled['ap50']:.3f} "
          f"{pooled['ap50_interval']}; fold CPU-minutes {results['summary']['train_cpu_minutes']}; -> {target}")
    for name, figures in results.get("exports", {}).items():
        print(f"  {name}: {figures}")


if __name__ == "__main__":
    main()
