"""Benchmark: batch prediction throughput on the ant/bee photos (issue: batch inference and serving).

One command, from the repository root with the venv active, after the hymenoptera benchmark has
trained a model (or give any run folder):

    python bench/batch_predict_throughput.py [--run bench/results/hymenoptera-efficientnet_lite0__ImageNet__2_phase_]

Compares, in one process on the same photos:
  naive    a loop that reads, preprocesses and calls model.predict on one image at a time,
  dlpipe   `dlpipe predict --out` (the resumable batch job: parallel tf.data decoding, batches),
  ceiling  the bare model on images decoded beforehand (no I/O, no decoding in the timing).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
DEFAULT_RUN = ROOT / "bench" / "results" / "hymenoptera-efficientnet_lite0__ImageNet__2_phase_"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from dlpipe.data.preprocess import load_image
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows, run_batch_job

    runtime = load_runtime(args.run, "keras")  # Keras, as before; the default (auto) may pick another artifact
    inputs = runtime.task.collect_inputs([str(PHOTOS)])
    if args.limit:
        inputs = inputs.subset(inputs.ids[:args.limit])
    paths = [inputs.payloads[key] for key in inputs.ids]
    prep = runtime.preprocessing
    runtime.predict(np.zeros((1, prep.image_size, prep.image_size, 3), np.float32))  # warm up

    started = time.perf_counter()
    for path in paths:
        pixels = load_image(tf.constant(path), prep).numpy()[None]
        runtime.model.predict(pixels, verbose=0)
    naive = len(paths) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        summary = run_batch_job(lambda todo: result_rows(runtime, inputs.subset(todo), 5, args.batch_size),
                                inputs.ids, Path(folder) / "rows.jsonl")
        job = len(paths) / (time.perf_counter() - started)
    assert summary.succeeded + summary.failed == len(paths)

    decoded = np.stack([load_image(tf.constant(p), prep).numpy() for p in paths])
    started = time.perf_counter()
    for start in range(0, len(decoded), args.batch_size):
        runtime.predict(decoded[start:start + args.batch_size])
    ceiling = len(paths) / (time.perf_counter() - started)

    print(f"\n{date.today()} · `python bench/batch_predict_throughput.py` · {len(paths)} photos · "
          f"batch {args.batch_size} · {os.cpu_count()} CPU cores\n")
    print("| method | images/s | vs naive loop | vs ceiling |")
    print("| --- | --- | --- | --- |")
    for name, rate in (("naive loop (model.predict per image)", naive), ("dlpipe predict --out (batch job)", job),
                       ("ceiling (bare model, pre-decoded)", ceiling)):
        print(f"| {name} | {rate:.1f} | {rate / naive:.1f}x | {rate / ceiling:.0%} |")


if __name__ == "__main__":
    main()
