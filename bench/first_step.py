"""Benchmark: the wait before training starts, with the train step traced once (dlpipe) or twice (Keras' default).

One command, from the repository root with dlpipe's venv active:

    python bench/first_step.py [--rounds 2] [--models image,minilm,tiny]

Keras 3 without a distribution strategy creates the optimizer's slots and the loss and metric totals inside the
first trace of the train step; TensorFlow then traces the step again without them. dlpipe's phases call
`models.trace_once.build_before_fit` first, so the step is traced once. This bench times `model.fit` of
one epoch of one step (wall clock: tracing, graph optimisation and the step itself) on random inputs, each model in
a fresh process per measurement, the two ways alternating `--rounds` times; it reports the best of each and how many
times the step was traced. Models: `image`: the image-classify default (EfficientNet-Lite2 at 260 px, random
weights: tracing does not depend on them), every layer trainable as in fine-tuning, batch 32, the phase's AdamW
with warm-up; `minilm`: the MiniLM classifier (random weights) at 128 tokens, batch 32, AdamW; `tiny`: the tests'
small CNN at 32 px, batch 8, Adam. Writes bench/results/first_step.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "first_step.json"


def build(kind: str):
    """(model, dataset, optimizer name) for one kind, built as the train stage builds it."""
    import numpy as np
    import tensorflow as tf

    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier
    from dlpipe.models.text_classifiers import minilm_classifier

    rng = np.random.default_rng(0)
    if kind == "minilm":
        model = minilm_classifier(2, 128, weights=None)
        ids = rng.integers(1000, 30000, (32, 128)).astype("int32")
        inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        return model, tf.data.Dataset.from_tensors((inputs, rng.integers(0, 2, 32).astype("int32"))), "adamw"
    name, size, batch = ("efficientnet_lite2", 260, 32) if kind == "image" else ("small_cnn", 32, 8)
    model = build_classifier(get_backbone(name), 2, size, weights=None)
    model.trainable = True  # fine-tuning: every block
    pixels = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    return model, tf.data.Dataset.from_tensors((pixels, rng.integers(0, 2, batch).astype("int32"))), (
        "adamw" if kind == "image" else "adam")


def measure(kind: str, once: bool) -> dict:
    """One measurement in this process: seconds of fit(1 epoch, 1 step) and the number of train-step traces."""
    import keras
    from keras.src.backend.tensorflow import trainer

    from dlpipe.models.trace_once import build_before_fit
    from dlpipe.pipelines.training.keras_fit import make_optimizer

    traces = []
    original = trainer.TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(1)
        return original(self, data)

    trainer.TensorFlowTrainer.train_step = counted
    model, dataset, optimizer = build(kind)
    rate = keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=1e-4, warmup_steps=1)
    model.compile(optimizer=make_optimizer(optimizer, rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    if once:
        build_before_fit(model, dataset)
    model.fit(dataset, epochs=1, verbose=0)
    return {"seconds": round(time.perf_counter() - started, 2), "traces": len(traces)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="image,minilm,tiny")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "WAY"), help=argparse.SUPPRESS)  # a child's measurement
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1] == "once")))
        return
    results = {}
    for kind in args.models.split(","):
        runs: dict[str, list[dict]] = {"once": [], "twice": []}
        for _ in range(args.rounds):
            for way in ("twice", "once"):
                done = subprocess.run([sys.executable, __file__, "--one", kind, way], capture_output=True, text=True,
                                      check=True)
                runs[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"{kind} {way}: {runs[way][-1]}", flush=True)
        best = {way: min(r["seconds"] for r in found) for way, found in runs.items()}
        results[kind] = {"runs": runs, "best_seconds": best, "saved_seconds": round(best["twice"] - best["once"], 2)}
        print(f"{kind}: fit's first step {best['twice']} s traced twice, {best['once']} s traced once", flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"command": "python bench/first_step.py " + " ".join(sys.argv[1:]),
                                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                  "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
