"""Benchmark: single-image LiteRT latency of several .tflite files, timed in interleaved rounds.

On a shared machine the load changes from minute to minute, so timing one file after another
compares loads as much as models. Here each round calls every file once (in a shuffled order),
so all files see the same load and their ratios hold even when the absolute times do not.
From the repository root, with dlpipe's venv active:

    nice -n 19 python bench/tflite_latency.py FILE.tflite [FILE.tflite ...] [--threads 2] [--rounds 300]

Inputs are random pixels of each file's input shape and type (uint8 quantised the way dlpipe's
runtimes do); latency does not depend on the pixel values. Prints a markdown table with p50/p90
per file and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np


def interpreter_and_input(path: Path, threads: int):
    """A ready LiteRT interpreter for `path` and one input that fits it."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if detail["dtype"] == np.uint8:
        image = rng.integers(0, 256, size=detail["shape"], dtype=np.uint8)
    else:
        image = rng.uniform(0, 255, size=detail["shape"]).astype(detail["dtype"])
    return interpreter, detail["index"], image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()
    models = {path: interpreter_and_input(path, args.threads) for path in args.files}
    times: dict[Path, list[float]] = {path: [] for path in models}
    order = list(models)
    for round_index in range(args.rounds + 10):
        random.Random(round_index).shuffle(order)
        for path in order:
            interpreter, index, image = models[path]
            interpreter.set_tensor(index, image)
            started = time.perf_counter()
            interpreter.invoke()
            if round_index >= 10:  # the first rounds warm up
                times[path].append((time.perf_counter() - started) * 1000)
    load_after = os.getloadavg()
    print(f"\nLiteRT, {args.threads} threads, batch 1, {args.rounds} interleaved rounds; load average (1/5/15 min) "
          f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after\n")
    print("| file | size (MB) | p50 (ms) | p90 (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for path, samples in times.items():
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"| {path.name} | {path.stat().st_size / 1e6:.2f} | {statistics.median(samples):.1f} | {p90:.1f} |")


if __name__ == "__main__":
    main()
