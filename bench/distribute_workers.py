"""Benchmark: one worker against two local workers (train.distribute=multi_worker) on this CPU (issue 31, item 1).

The point is correctness and overhead, not speed: two TensorFlow processes on one 2-core machine share its cores
and add an all-reduce per step. One command, from the repository root with the venv active:

    python bench/distribute_workers.py [--epochs 4] [--image-size 64]

Trains the small CNN from scratch on the hymenoptera photos (same split, seed and settings) with `dlpipe run`,
once as one process and once as two workers on 127.0.0.1 (TF_CONFIG per worker, global batch unchanged), and
reports per run: the train stage's wall time, training images/s (train examples x epochs / train stage seconds),
the whole command's wall time and the validation accuracy. Writes bench/results/distribute_workers.json.
No GPU is used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
sys.path.insert(0, str(ROOT / "tests"))
from helpers_multiworker import free_ports  # the ports the multi-worker tests use, found the same way

DLPIPE = [str(Path(sys.executable).with_name("dlpipe"))]  # the venv's command, as a user runs it


def settings(epochs: int, size: int) -> list[str]:
    sets = ["model.backbone=small_cnn", "model.weights=none", f"model.image_size={size}", f"train.epochs={epochs}",
            "train.batch_size=16", "train.learning_rate=0.001", "train.tensorboard=false", "train.progress=none",
            "train.early_stopping_patience=0", "augment.enabled=false", "export.formats=[keras]",
            "export.parity_sample=8"]
    return [arg for item in sets for arg in ("--set", item)]


def run(workers: int, out: Path, args: argparse.Namespace) -> dict:
    """`dlpipe run` as `workers` processes; the chief's report and metrics."""
    command = [*DLPIPE, "run", "image-classify", "--data", str(PHOTOS), "--out", str(out),
               *settings(args.epochs, args.image_size)]
    if workers > 1:
        command += ["--set", "train.distribute=multi_worker"]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    started = time.perf_counter()
    processes = []
    for index in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    for index, process in enumerate(processes):
        output, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"worker {index} failed:\n{output[-3000:]}")
    wall = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    train = report["stages"]["train"]
    examples = int(report["stages"]["load"]["summary"].split("(")[1].split(" train")[0])
    epochs = int(train["summary"].split(" epochs")[0])
    return {"workers": workers, "train_seconds": train["seconds"], "command_seconds": round(wall, 1),
            "train_examples": examples, "epochs": epochs,
            "images_per_second": round(examples * epochs / train["seconds"], 1),
            "val_accuracy": metrics["accuracy"], "val_count": metrics.get("count")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            rows.append(run(workers, Path(tmp) / f"w{workers}", args))
            print(json.dumps(rows[-1]), flush=True)
    one, two = rows
    result = {"date": str(date.today()), "cpus": os.cpu_count(), "gpu": "none", "epochs": args.epochs,
              "image_size": args.image_size, "runs": rows,
              "two_over_one_images_per_second": round(two["images_per_second"] / one["images_per_second"], 2)}
    out = ROOT / "bench" / "results" / "distribute_workers.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"2 workers / 1 worker, training images/s: {result['two_over_one_images_per_second']}x; written {out}")


if __name__ == "__main__":
    main()
