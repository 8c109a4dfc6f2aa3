"""Benchmark (issue 32, item 1): which image default answers raw photos on the device as the run's Keras model does,
without losing held-out accuracy. 5-fold cross-validation on the 245 shared ant/bee photos.

One command, from the repository root with the venv active (MediaPipe's venv and chromium from scripts/setup.sh):

    nice -n 10 python bench/device_default_cv.py [--data ../shared/data/hymenoptera/train] [--only NAME ...]

For each option and fold k (the folds of pipelines/training/crossval.py: numpy default_rng(0) permutation per class,
every 5th photo from offset k validates) it links the fold's photos into bench/results/device_cv/split_k/{train,val},
runs `dlpipe run image-classify --data train --set load.val_path=val` with the option's settings (no refit: the
fold's model never sees its validation photos; every .tflite variant; export.device_check=true runs each file in
MediaPipe's ImageClassifier in its own environment on the raw validation photos), then `dlpipe check-device RUN --data
val --web` (MediaPipe Tasks Web in headless Chromium). Pooled over the 245 photos it reports, per option: the Keras
model's accuracy (with a Wilson interval), and for every .tflite the top-1 agreement with the Keras model and the
accuracy through dlpipe's LiteRT runtime (artifacts.json parity), MediaPipe Python and MediaPipe Web. Resumable: a fold
whose run and check finished is read back. Results: bench/results/device_default_cv.json and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
RESULTS = ROOT / "bench" / "results" / "device_cv"
DLPIPE = str(Path(sys.executable).with_name("dlpipe"))  # the venv's console script
FOLDS = 5
FILES = ["model.tflite", "model_float16.tflite", "model_dynamic.tflite", "model_int8.tflite"]
COMMON = ["train.refit=false", "export.formats=[keras,tflite,tflite-float16,tflite-dynamic,tflite-int8]",
          "export.device_check=true", "export.parity_sample=1000", "train.progress=none"]
OPTIONS: dict[str, list[str]] = {
    "crop, antialias (the default before issue 32)": ["preprocess.resize=crop", "preprocess.sampling=antialias"],
    "stretch, MediaPipe sampling (the default since)": ["preprocess.resize=stretch", "preprocess.sampling=mediapipe"],
}


def fold_split(data: Path, fold: int) -> Path:
    """bench/results/device_cv/split_K/{train,val}/CLASS/ with symlinks to the photos (stratified, seeded)."""
    root = RESULTS / f"split_{fold}"
    if (root / "done").is_file():
        return root
    for cls in sorted(p for p in data.iterdir() if p.is_dir()):
        photos = sorted(p for p in cls.iterdir() if p.is_file())
        order = np.random.default_rng(0).permutation(len(photos))
        held = set(order[fold::FOLDS].tolist())
        for index, photo in enumerate(photos):
            target = root / ("val" if index in held else "train") / cls.name / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to(photo.resolve())
    (root / "done").write_text("")
    return root


def run_fold(name: str, sets: list[str], split: Path, fold: int) -> dict:
    slug = "".join(c if c.isalnum() else "_" for c in name)
    out = RESULTS / slug / f"fold{fold}"
    device = out / "device_web.json"
    if not (out / "artifacts.json").is_file():
        args = ["run", "image-classify", "--data", str(split / "train"), "--out", str(out), "--overwrite",
                "--set", f"load.val_path={split / 'val'}"]
        for item in COMMON + sets:
            args += ["--set", item]
        subprocess.run([DLPIPE, *args], check=True)
    if not device.is_file():
        subprocess.run([DLPIPE, "check-device", str(out), "--data",
                        str(split / "val"), "--out", str(device), "--web"], check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    records = json.loads((out / "artifacts.json").read_text())
    web = json.loads(device.read_text())
    keras_right = metrics["count"] - len(metrics.get("errors", []))
    gated = web["files"][FILES[0]]  # check-device's Keras answers are the shipped model's, unknown answer included
    fold = {"count": metrics["count"], "keras_correct": keras_right,
            "keras_gated_correct": round(gated["keras_accuracy"] * gated["inputs"]), "files": {}}
    for file in FILES:
        record = records[file]
        # MediaPipe Python from this bench's own check-device report: artifacts.json keeps the latest check of any
        # folder (bench/device_exif.py checks the same runs on rotated copies)
        parity, mediapipe = record["parity"], web["files"][file]
        web_figures = web.get("web", {}).get(file, {})
        scored = out / f"evaluate_{file}.json"  # LiteRT through dlpipe's TensorFlow-free runtime
        if not scored.is_file():
            subprocess.run([DLPIPE, "evaluate", str(out / file), "--data", str(split / "val"), "--out", str(scored)],
                           check=True, stdout=subprocess.DEVNULL)
        litert = json.loads(scored.read_text())
        fold["files"][file] = {
            "litert_correct": round(litert["accuracy"] * litert["count"]),
            "size_mb": (out / file).stat().st_size / 1e6,
            "litert_agree": round(parity["top1_agreement"] * parity["count"]), "litert_count": parity["count"],
            "mediapipe_agree": round(mediapipe["top1_agreement"] * mediapipe["inputs"]),
            "mediapipe_count": mediapipe["inputs"],
            "mediapipe_correct": round(mediapipe["mediapipe_accuracy"] * mediapipe["inputs"]),
            "web_agree": round(web_figures.get("top1_agreement", float("nan")) * web_figures.get("inputs", 0))
            if web_figures else None,
            "web_count": web_figures.get("inputs"),
            "web_correct": round(web_figures["mediapipe_accuracy"] * web_figures["inputs"]) if web_figures else None,
        }
    return fold


def wilson(correct: int, count: int) -> list[float]:
    z = 1.959964
    p = correct / count
    centre = (p + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return [centre - half, centre + half]


def pooled(folds: list[dict]) -> dict:
    count = sum(f["count"] for f in folds)
    correct = sum(f["keras_correct"] for f in folds)
    summary = {"photos": count, "keras_accuracy": correct / count, "keras_interval": wilson(correct, count),
               "keras_accuracy_with_unknown": sum(f["keras_gated_correct"] for f in folds) / count, "files": {}}
    for file in FILES:
        rows = [f["files"][file] for f in folds]

        def share(key: str, of: str) -> float | None:
            if any(r[key] is None for r in rows):
                return None
            return sum(r[key] for r in rows) / sum(r[of] for r in rows)

        summary["files"][file] = {
            "size_mb": float(np.mean([r["size_mb"] for r in rows])),
            "litert_agreement": share("litert_agree", "litert_count"),
            "litert_accuracy": sum(r["litert_correct"] for r in rows) / count,
            "mediapipe_agreement": share("mediapipe_agree", "mediapipe_count"),
            "mediapipe_accuracy": share("mediapipe_correct", "mediapipe_count"),
            "web_agreement": share("web_agree", "web_count"),
            "web_accuracy": share("web_correct", "web_count"),
        }
    return summary


def markdown(results: dict) -> str:
    lines = ["| option | Keras CV accuracy (95% interval); with the unknown answer | file | LiteRT agreement / accuracy "
             "| MediaPipe Python agreement / accuracy | MediaPipe Web agreement / accuracy |", "|---|---|---|---|---|---|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for name, result in results["options"].items():
        low, high = result["keras_interval"]
        for index, (file, row) in enumerate(result["files"].items()):
            head = (f"{name} | {result['keras_accuracy']:.3f} ({low:.3f}-{high:.3f}); "
                    f"{result['keras_accuracy_with_unknown']:.3f}" if index == 0 else " | ")
            lines.append(f"| {head} | {file} | {pct(row['litert_agreement'])} / {row['litert_accuracy']:.3f} | "
                         f"{pct(row['mediapipe_agreement'])} / "
                         f"{row['mediapipe_accuracy']:.3f} | {pct(row['web_agreement'])} / "
                         f"{'-' if row['web_accuracy'] is None else format(row['web_accuracy'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", nargs="*", default=None, help="option names to run (default: all)")
    args = parser.parse_args()
    started = time.time()
    results = {"date": date.today().isoformat(), "command": "python bench/device_default_cv.py", "folds": FOLDS,
               "data": str(args.data), "common_sets": COMMON, "options": {}}
    for name, sets in OPTIONS.items():
        if args.only and name not in args.only:
            continue
        folds = [run_fold(name, sets, fold_split(args.data, k), k) for k in range(FOLDS)]
        results["options"][name] = {"sets": sets, **pooled(folds), "per_fold": folds}
        print(f"{name}: done after {time.time() - started:.0f} s", flush=True)
    results["wall_seconds"] = time.time() - started
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "device_default_cv.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
