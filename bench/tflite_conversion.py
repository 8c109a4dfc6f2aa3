"""Benchmark: the .tflite files of one model, each converted by TensorFlow's Keras path or all from one SavedModel.

One command, from the repository root with dlpipe's venv active:

    python bench/tflite_conversion.py [--rounds 2] [--models lite0,lite2]

`tf.lite.TFLiteConverter.from_keras_model` writes the model to a temporary SavedModel, loads it back and converts
that, once per file. Inside `one_source_per_model()` (models/export/tflite_source.py: every run's export and
`dlpipe export --quantize auto`) the SavedModel is written once and each file converts from it. This bench converts
the four files `dlpipe export --quantize auto` makes for an image classifier (float32, float16, dynamic, int8 with
32 calibration images) both ways in one process, the two ways alternating `--rounds` times, and reports the best
total of each. Models: the image-classify classifiers on EfficientNet-Lite0 at 224 px and the default
EfficientNet-Lite2 at 260 px (random weights: conversion does not depend on them). Writes
bench/results/tflite_conversion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "tflite_conversion.json"
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SIZES = {"lite0": ("efficientnet_lite0", 224), "lite2": ("efficientnet_lite2", 260)}


def build(kind: str):
    import numpy as np

    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier

    name, size = SIZES[kind]
    model = build_classifier(get_backbone(name), 2, size, weights=None)
    calibration = list(np.random.default_rng(0).uniform(0, 255, (32, size, size, 3)).astype("float32"))
    return model, calibration


def convert_all(model, calibration, shared: bool) -> tuple[float, list[int]]:
    """Seconds to convert the four files, and their sizes."""
    import tensorflow as tf

    from dlpipe.models.export.converters import convert
    from dlpipe.models.export.tflite_source import one_source_per_model, tflite_converter

    started = time.perf_counter()
    sizes = []
    if shared:
        with one_source_per_model():
            for quantize in QUANTIZATIONS:
                sizes.append(len(convert(tflite_converter(model), quantize, calibration)))
    else:
        for quantize in QUANTIZATIONS:
            sizes.append(len(convert(tf.lite.TFLiteConverter.from_keras_model(model), quantize, calibration)))
    return time.perf_counter() - started, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="lite0,lite2")
    args = parser.parse_args()
    results = {}
    for kind in args.models.split(","):
        model, calibration = build(kind)
        convert_all(model, calibration, shared=True)  # warm: TensorFlow's and the converter's first-use costs
        best = {"per_file": float("inf"), "shared": float("inf")}
        for _ in range(args.rounds):
            for shared in (False, True):
                seconds, sizes = convert_all(model, calibration, shared)
                key = "shared" if shared else "per_file"
                best[key] = min(best[key], seconds)
                results.setdefault(kind, {})[f"sizes_{key}"] = sizes
        results[kind].update(best)
        print(f"{kind}: four files (float32, float16, dynamic, int8) {best['per_file']:.1f} s converted one by one "
              f"from the Keras model, {best['shared']:.1f} s from one SavedModel "
              f"({best['shared'] / best['per_file']:.2f}x); sizes {results[kind]['sizes_shared']}", flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rounds": args.rounds, "results": results},
                                 indent=2))


if __name__ == "__main__":
    main()
