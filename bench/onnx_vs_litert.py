"""Benchmark: onnxruntime vs LiteRT on the same image model, float32, on this CPU (issue 29, item 4).

One command, from the repository root with the venv active:

    python bench/onnx_vs_litert.py --run RUN [--work DIR] [--photos DIR] [--repeats 20]

RUN is a finished image-classify run (e.g. the default recipe: EfficientNet-Lite2). Its model.keras is
exported with `dlpipe export`'s own code to model.tflite (float32) and model.onnx in --work (the run is not
touched); both exports record their parity with the Keras model there. Photos (default: the 245 shared
hymenoptera photos; agreement between runtimes, not accuracy, is measured, so training photos do) are prepared once by dlpipe's TensorFlow-free preprocessing, then each
runtime (dlpipe's TFLiteRuntime / OnnxRuntime, as predict and serve use them) classifies them at batch 1
and batch 32 with 1 and 2 threads, the two taking turns pass by pass (a shared machine's changing load falls
on both alike); the figure is the median over --repeats of the time per input. Also
prints top-1 agreement and the largest probability difference of each file against the Keras model on the
same photos. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
BATCHES = (1, 32)
THREADS = (1, 2)


def prepared_pixels(runtime, photos: Path):
    """Every photo under `photos` as one float32 batch, prepared as dlpipe's runtimes prepare them."""
    import numpy as np

    inputs = runtime.task.collect_inputs([str(photos)])
    parts = [prepared.batch for prepared in runtime.task.batches(inputs, runtime.preprocessing, 64) if prepared.readable]
    return np.concatenate([np.asarray(part, np.float32) for part in parts])


def ms_per_input(runtimes: dict, pixels, batch: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per input of each runtime over `repeats` passes of a batch of `batch` rows.

    The runtimes take turns pass by pass (one warm-up each first), so a shared machine's changing load falls on
    both alike."""
    chunk = pixels[:batch]
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for runtime in runtimes.values():
        runtime.predict(chunk)
    for _ in range(repeats):
        for name, runtime in runtimes.items():
            started = time.perf_counter()
            runtime.predict(chunk)
            times[name].append((time.perf_counter() - started) / len(chunk))
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished image-classify run folder")
    parser.add_argument("--work", type=Path, default=None, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import numpy as np

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.exporting import export_run

    work = args.work or Path(tempfile.mkdtemp(prefix="onnx-vs-litert-"))
    files = {fmt: export_run(args.run, fmt, work) for fmt in ("tflite", "onnx")}
    keras_runtime = load_runtime(args.run, "keras")
    pixels = prepared_pixels(load_runtime(files["tflite"]), args.photos)
    reference = keras_runtime.predict(pixels)
    print(f"run {args.run} ({keras_runtime.preprocessing.image_size} px), {len(pixels)} photos from {args.photos}")
    print("| runtime | file | MB | top-1 agreement with Keras | max prob. diff | "
          + " | ".join(f"ms/input batch {b}, {t} thread{'s' if t > 1 else ''}" for b in BATCHES for t in THREADS) + " |")
    print("|---|---|---|---|---|" + "---|" * (len(BATCHES) * len(THREADS)))
    cells: dict[str, list[str]] = {fmt: [] for fmt in files}
    for batch in BATCHES:
        for threads in THREADS:
            runtimes = {fmt: load_runtime(path, num_threads=threads) for fmt, path in files.items()}
            for fmt, ms in ms_per_input(runtimes, pixels, batch, args.repeats).items():
                cells[fmt].append(f"{ms:.2f}")
    for name, fmt in (("LiteRT (float32 .tflite)", "tflite"), ("onnxruntime (.onnx)", "onnx")):
        path = files[fmt]
        outputs = load_runtime(path).predict(pixels)
        agreement = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
        diff = float(np.max(np.abs(outputs - reference)))
        size = path.stat().st_size / 1e6
        print(f"| {name} | {path.name} | {size:.1f} | {agreement:.1%} | {diff:.1e} | " + " | ".join(cells[fmt]) + " |")


if __name__ == "__main__":
    main()
