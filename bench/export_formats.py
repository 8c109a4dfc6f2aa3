"""Benchmark: size, single-image latency and accuracy of every export format, side by side in one run.

One command, from the repository root with the venv active, after the hymenoptera benchmark has
trained the EfficientNet-Lite0 model (or give any image run folder):

    python bench/export_formats.py [--run RUN_DIR] [--runs 200]

Exports the run's model as a SavedModel and as TFLite float32, float16, dynamic-range and int8
(calibrated on training images), then for Keras, SavedModel and each TFLite file reports the file
size, single-image latency (median and p90 over --runs calls, with 1 and 2 threads) and accuracy on
the run's validation split (the same seeded split the run used).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "bench" / "results" / "hymenoptera-efficientnet_lite0__ImageNet__2_phase_"


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def latencies(predict, image, runs: int) -> tuple[float, float]:
    predict(image)  # warm up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict(image)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def validation_split(run: Path, class_names: list[str]):
    """The run's validation photos (an InputSet) and label indices, re-read by the run's own load stage."""
    import numpy as np

    from dlpipe.models.tasks import InputSet, get_task
    from dlpipe.pipelines.api import load_saved_config
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.stage import RunContext

    config = load_saved_config(run)
    spec = get_pipeline(config.pipeline)
    ctx = RunContext(out_dir=run, seed=config.seed, config=config, task=get_task(spec.task), echo=lambda _: None)
    spec.stage_class("load")(config["load"]).run(ctx)
    assert ctx.class_names == class_names, (ctx.class_names, class_names)
    inputs = InputSet()
    for path in ctx.val.inputs:
        inputs.add(path, path)
    return inputs, np.array(ctx.val.labels)


def recorded_parity(path: Path) -> str:
    """The parity the export recorded in artifacts.json: top-1 agreement / accuracy / ms per input."""
    from dlpipe.models import artifacts

    parity = (artifacts.read_record(path) or {}).get("parity")
    if not parity:
        return "–"
    if parity.get("top1_agreement") is None:  # nothing was compared
        return f"unchecked ({parity.get('count', 0)} images)"
    accuracy = f"{parity['accuracy']:.3f}" if "accuracy" in parity else "–"
    return (f"{parity['top1_agreement']:.3f} / {accuracy} / {parity['seconds_per_item'] * 1000:.1f} "
            f"({parity['count']} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    import numpy as np

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.exporting import export_run

    run = Path(args.run)
    keras_runtime = load_runtime(run / "model.keras")
    val_inputs, val_labels = validation_split(run, keras_runtime.class_names)
    # decode the validation photos once, exactly as `dlpipe predict` does (the task's own batches)
    task, prep = keras_runtime.task, keras_runtime.preprocessing
    parts = [prepared.batch for prepared in task.batches(val_inputs, prep, 1000) if prepared.readable]
    val_pixels = np.concatenate(parts)
    assert len(val_pixels) == len(val_labels), "some validation photos could not be decoded"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        artifacts = {"Keras float32 (.keras)": run / "model.keras"}
        artifacts["SavedModel"] = export_run(run, "savedmodel", out)
        for fmt, name in (("tflite", "TFLite float32"), ("tflite-float16", "TFLite float16"),
                          ("tflite-dynamic", "TFLite dynamic range"), ("tflite-int8", "TFLite int8")):
            artifacts[name] = export_run(run, fmt, out)
        for name, path in artifacts.items():
            timings = []
            for threads in (1, 2):
                runtime = load_runtime(path, num_threads=threads) if path.suffix == ".tflite" else load_runtime(path)
                timings.append(latencies(runtime.predict, val_pixels[:1], args.runs))
            accuracy = float((runtime.predict(val_pixels).argmax(1) == val_labels).mean())
            rows.append((name, size_of(path), timings, accuracy, recorded_parity(path)))
            print(rows[-1], flush=True)
    base_size, base_latency = rows[0][1], rows[0][2][0][0]
    print(f"\n{date.today()} · `python bench/export_formats.py` · {len(val_labels)} validation images · "
          f"{args.runs} single-image calls per latency · {os.cpu_count()} CPU cores\n")
    print("| artifact | size (MB) | vs Keras size | latency 1 thread p50 / p90 (ms) | 2 threads p50 / p90 (ms) "
          "| speed-up vs Keras (1 thread p50) | val accuracy | recorded parity: top-1 agreement / accuracy "
          "/ ms per input |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, size, ((p50a, p90a), (p50b, p90b)), accuracy, parity in rows:
        print(f"| {name} | {size / 1e6:.2f} | {size / base_size:.2f} | {p50a:.1f} / {p90a:.1f} | {p50b:.1f} / {p90b:.1f} "
              f"| {base_latency / p50a:.1f}x | {accuracy:.3f} | {parity} |")
    print("\nRecorded parity: what the export wrote into artifacts.json (the written artifact loaded back and run "
          "on the run's first validation inputs against the Keras model, one batch; ms per input of that batch).")
    print("\nKeras and SavedModel run through TensorFlow, whose thread pools are fixed at start-up, so their "
          "1- and 2-thread rows use the same (default) pools; TFLite rows set num_threads.")


if __name__ == "__main__":
    main()
