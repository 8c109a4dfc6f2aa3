"""Benchmark (issue 25): the shipped multi-label default on the fashion scenes, by 5-fold cross-validation.

One command, from the repository root with the venv active:

    nice -n 10 python bench/multilabel_fashion.py [--data ../shared/data/detection_fashion] [--folds 5] [--set K=V ...]

It runs `dlpipe run image-multilabel --data DATA --set train.cv_folds=5` (COCO JSON read as multi-label: a scene's
labels are the item classes boxed in it; each fold in bench/results/multilabel/folds/K/, resumable) and then the
final run on all 300 scenes, exporting the .tflite. It records the pooled out-of-fold mAP and micro/macro F1 (F1 at
thresholds chosen on the other folds) with 95% bootstrap intervals, per label, the CPU time, and then runs the real
MediaPipe ImageClassifier (.venv-mediapipe) on the exported .tflite over every scene to count the scenes whose label
set equals `dlpipe predict`'s. Results: bench/results/multilabel_fashion.json and a markdown summary on stdout.
`--folds 0` skips the cross-validation: the final run and the MediaPipe check alone (bench/results/multilabel_final/,
bench/results/multilabel_fashion_final.json), for a change that moves pixels but not the recipe; `--check RUN` the
MediaPipe check alone on a finished run's model.tflite. The check counts twice: MediaPipe decoding each file itself,
and MediaPipe handed the pixels dlpipe decodes (its JPEG decoder differs from libjpeg's by up to 3 levels).
`python bench/multilabel_posthoc.py bench/results/multilabel` then scores poolings, the mirror and threshold rules on
the finished folds' models (no training).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "detection_fashion"
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--check", metavar="RUN", help="no training: the MediaPipe check alone on RUN/model.tflite")
    args = parser.parse_args()
    if args.check:
        print(f"MediaPipe: {mediapipe_agreement(Path(args.check), args.data)}")
        return
    from dlpipe.pipelines import api

    out = RESULTS / ("multilabel" if args.folds else "multilabel_final")
    started = time.perf_counter()
    resume = (out / "config.yaml").is_file()
    result = api.run("image-multilabel", data=None if resume else args.data, out=out, resume=resume,
                     sets=[] if resume else [f"train.cv_folds={args.folds}", "export.formats=[keras,tflite]",
                                             "train.progress=epochs", *args.sets])
    seconds = time.perf_counter() - started
    cv = result.metrics.get("cross_validation")
    agreement = mediapipe_agreement(out, args.data)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {"date": str(date.today()), "command": "python bench/multilabel_fashion.py " + " ".join(sys.argv[1:]),
              "cross_validation": cv, "final_run_validation": {k: result.metrics[k] for k in ("map", "micro_f1", "macro_f1")},
              "wall_seconds": round(seconds), "cpu_minutes": round((usage.ru_utime + usage.ru_stime) / 60, 1),
              "mediapipe": agreement}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "multilabel_fashion.json" if cv else "multilabel_fashion_final.json"
    (RESULTS / name).write_text(json.dumps(record, indent=1))
    print(f"final run, validation before the refit: {record['final_run_validation']}")
    if cv:
        print_pooled(cv["pooled"])
    print(f"MediaPipe: {agreement}")
    print(f"wall {seconds / 60:.1f} min, CPU {record['cpu_minutes']} min")


def print_pooled(pooled: dict) -> None:
    print(f"pooled mAP {pooled['map']:.3f} {pooled['map_interval']}, micro F1 {pooled['micro_f1']:.3f} "
          f"{pooled['micro_f1_interval']}, macro F1 {pooled['macro_f1']:.3f} {pooled['macro_f1_interval']}")
    for name, label in pooled["per_label"].items():
        print(f"  {name}: AP {label['ap']:.3f} F1 {label['f1']:.3f} ({label['support']})")


def mediapipe_agreement(out: Path, data: str) -> dict:
    """Scenes whose label set MediaPipe's ImageClassifier (defaults: the metadata's 0.5) and dlpipe predict agree on."""
    from dlpipe.data.multilabel import read_multilabel
    from dlpipe.models.runtimes import load_runtime

    sys.path.insert(0, str(ROOT / "tests"))  # after dlpipe: tests/dlpipe/ would pass for the package
    from edge.mediapipe_env import mediapipe_python, run_mediapipe

    if not mediapipe_python().is_file():
        return {"skipped": "no .venv-mediapipe"}
    photos = read_multilabel(data, verify=False).paths
    runtime = load_runtime(out / "model.tflite")
    task = runtime.task
    ours = []
    for prepared in task.batches(task.collect_inputs(photos), runtime.preprocessing, 32):
        for row in runtime.predict(prepared.batch):
            ours.append(set(task.describe(row, runtime.class_names, 5)["labels"]))
    jobs = [{"model": str(out / "model.tflite"), "images": photos, "decode": decode} for decode in ("mediapipe", "pillow")]
    answer = run_mediapipe({"image": jobs}, timeout=1800)
    same = [sum(a == {c["category_name"] for c in categories} for a, categories in zip(ours, job))
            for job in answer["image"]]
    # MediaPipe decoding each file itself (its own JPEG decoder), and handed the pixels dlpipe decodes (Pillow)
    return {"scenes": len(photos), "same_label_set": same[0], "same_label_set_same_decoded_pixels": same[1]}


if __name__ == "__main__":
    main()
