"""Benchmark: what pretrained weights buy on the ant/bee photos (issue: real pretrained backbones).

One command, from the repository root with the venv active:

    python bench/hymenoptera_transfer.py [--data ../shared/data/hymenoptera/train] [--only NAME ...]

Runs `dlpipe run image-classify` on the same seeded, stratified 80/20 split with:
  - efficientnet_lite0 with its ImageNet weights (the default two-phase recipe),
  - efficientnet_lite0 from random weights (same recipe, everything trains),
  - the small CNN from scratch,
and prints a markdown table of validation accuracy, macro F1 and wall times (training stage and
whole run, on this machine's CPU cores). Runs land in bench/results/ (not tracked).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"

# name -> --set overrides on top of the embedded default config
CONFIGS: dict[str, list[str]] = {
    "efficientnet_lite0 (ImageNet, 2-phase)": [],
    "efficientnet_lite0 (random init)": ["model.weights=none", "train.epochs=8", "train.finetune_epochs=0"],
    "small_cnn (from scratch)": [
        "model.backbone=small_cnn", "model.weights=none", "model.image_size=128", "train.epochs=20",
        "train.early_stopping_patience=6", "train.monitor=val_accuracy",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--only", nargs="*", help="substrings of the configs to run")
    args = parser.parse_args()
    from dlpipe.pipelines import api

    rows = []
    for name, sets in CONFIGS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        out = ROOT / "bench" / "results" / ("hymenoptera-" + "".join(c if c.isalnum() else "_" for c in name))
        started = time.perf_counter()
        result = api.run("image-classify", data=args.data, out=out, sets=[*sets, "train.progress=epochs"],
                         overwrite=True, echo=lambda line: print(line, flush=True))
        total = time.perf_counter() - started
        stages = result.report["stages"]
        rows.append({
            "config": name,
            "val_accuracy": result.metrics["accuracy"],
            "macro_f1": result.metrics["macro_f1"],
            "val_images": result.metrics["count"],
            "train_seconds": stages["train"]["seconds"],
            "run_seconds": round(total, 1),
            "epochs": stages["train"]["summary"],
        })
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{date.today()} · `python bench/hymenoptera_transfer.py` · {os.cpu_count()} CPU cores · "
          f"Python {platform.python_version()}\n")
    print("| config | val accuracy | macro F1 | train stage (s) | whole run (s) | epochs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['config']} | {row['val_accuracy']:.3f} ({row['val_images']} images) | {row['macro_f1']:.3f} | "
              f"{row['train_seconds']:.0f} | {row['run_seconds']:.0f} | {row['epochs']} |")


if __name__ == "__main__":
    sys.exit(main())
