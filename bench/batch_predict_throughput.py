"""Benchmark: batch prediction throughput on the ant/bee photos (issue: batch inference and serving).

One command, from the repository root with the venv active, after the hymenoptera benchmark has
trained a model (or give any run folder):

    python bench/batch_predict_throughput.py [--run RUN] [--artifact keras|int8|auto|...]

Compares, in one process on the same photos:
  naive    a loop that reads, preprocesses and calls the Keras model on one image at a time,
  dlpipe   `dlpipe predict --out` on the chosen artifact (the resumable batch job: parallel tf.data
           decoding overlapped with inference, batches),
  model    the bare artifact on images decoded beforehand (no I/O, no decoding in the timing),
  decode   reading and preprocessing alone, in parallel (tf.data), as the batch job decodes,
  ceiling  decode and model sharing the machine: 1 / (1/decode + 1/model).
Then the reduced-scale JPEG decoding (libjpeg DCT scaling for photos at least twice the resize's need,
`reduced_decode` in the preprocessing): decode rate and the artifact's top-1 agreement between full and
reduced decoding, on the photos as they are and on copies upscaled 3x (re-saved as JPEG, quality 95),
which all qualify.
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


def rates(work, count: int, passes: int) -> tuple[float, float]:
    """(first, best) items/s of `passes` runs of `work`: the first pass pays for set-up, the best is steady state."""
    seen = []
    for _ in range(max(1, passes)):
        started = time.perf_counter()
        work()
        seen.append(count / (time.perf_counter() - started))
    return seen[0], max(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    parser.add_argument("--artifact", default="keras", help="which artifact the batch job runs (see dlpipe predict)")
    parser.add_argument("--passes", type=int, default=3,
                        help="time the job, decoding and model this many times each and keep the best (the first "
                             "pass of the job is also reported: it builds the interpreters and traces the pipeline)")
    parser.add_argument("--only-reduced", action="store_true", help="measure only the reduced-scale decoding")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from dlpipe.data.preprocess import load_image
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows, run_batch_job

    keras_runtime = load_runtime(args.run, "keras")
    runtime = load_runtime(args.run, args.artifact)
    inputs = runtime.task.collect_inputs([str(PHOTOS)])
    if args.limit:
        inputs = inputs.subset(inputs.ids[:args.limit])
    paths = [inputs.payloads[key] for key in inputs.ids]
    prep = runtime.preprocessing
    runtime.predict(np.zeros((1, prep.image_size, prep.image_size, 3), np.float32))  # warm up
    if args.only_reduced:
        rows = reduced_decode_rows(runtime, paths, args.batch_size)
        print_reduced(rows)
        return

    started = time.perf_counter()
    for path in paths:
        pixels = load_image(tf.constant(path), prep).numpy()[None]
        keras_runtime.model.predict(pixels, verbose=0)
    naive = len(paths) / (time.perf_counter() - started)

    def batch_job() -> None:
        with tempfile.TemporaryDirectory() as folder:
            summary = run_batch_job(lambda todo: result_rows(runtime, inputs.subset(todo), 5, args.batch_size),
                                    inputs.ids, Path(folder) / "rows.jsonl")
        assert summary.succeeded + summary.failed == len(paths)

    from dlpipe.data.datasets import decoded_images

    decoded = []

    def decode_all() -> None:  # decoding as the batch job does it, in parallel on every core
        if getattr(runtime.task, "decoder", "tensorflow") == "numpy":  # a .tflite: Pillow/NumPy, no TensorFlow
            from dlpipe.models.tasks.image.numpy_inputs import read_batches

            batches = read_batches(runtime.task, inputs, list(inputs.ids), prep, args.batch_size)
            decoded[:] = [image for batch in batches for image in batch.batch]
        else:  # Keras and SavedModel: tf.data
            decoded[:] = [image.numpy() for image in decoded_images(paths, None, prep, cache=False)]

    job_cold, job = rates(batch_job, len(paths), args.passes)
    _, decode = rates(decode_all, len(paths), args.passes)
    pixels = np.stack(decoded)
    outputs = []

    def model_only() -> None:
        outputs[:] = [runtime.predict(pixels[start:start + args.batch_size])
                      for start in range(0, len(pixels), args.batch_size)]

    _, model = rates(model_only, len(paths), args.passes)
    ceiling = 1 / (1 / decode + 1 / model)
    reference = np.concatenate([keras_runtime.predict(pixels[start:start + args.batch_size])
                                for start in range(0, len(pixels), args.batch_size)])
    agreement = float(np.mean(np.concatenate(outputs).argmax(1) == reference.argmax(1)))

    reduced_rows = reduced_decode_rows(runtime, paths, args.batch_size)

    print(f"\n{date.today()} · `python bench/batch_predict_throughput.py --artifact {args.artifact}` · "
          f"best of {args.passes} passes · "
          f"{len(paths)} photos · batch {args.batch_size} · {os.cpu_count()} CPU cores · artifact "
          f"{runtime.path.name} ({runtime.chosen_because}) · top-1 agreement with Keras {agreement:.3f}\n")
    print("| method | images/s | vs naive loop | vs ceiling |")
    print("| --- | --- | --- | --- |")
    for name, rate in (("naive loop (Keras per image)", naive),
                       (f"dlpipe predict --out ({runtime.format}), first pass (cold)", job_cold),
                       (f"dlpipe predict --out ({runtime.format}), best of {args.passes}", job),
                       (f"model only ({runtime.format}, pre-decoded)", model), ("decode only", decode),
                       ("ceiling 1/(1/decode + 1/model)", ceiling)):
        print(f"| {name} | {rate:.1f} | {rate / naive:.1f}x | {rate / ceiling:.0%} |")
    print_reduced(reduced_rows)


def print_reduced(reduced_rows: list[tuple]) -> None:
    print("\n| photos | decoded at reduced scale | decode full, images/s | decode reduced, images/s | speed-up "
          "| top-1 agreement, reduced vs full |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, count, total, full_rate, reduced_rate, agreement in reduced_rows:
        print(f"| {name} | {count}/{total} | {full_rate:.1f} | {reduced_rate:.1f} | {reduced_rate / full_rate:.2f}x "
              f"| {agreement:.3f} |")


def reduced_decode_rows(runtime, paths: list[str], batch_size: int) -> list[tuple]:
    """(photos, how many qualify, total, full decode rate, reduced decode rate, top-1 agreement) rows."""
    import dataclasses

    import numpy as np
    from PIL import Image

    from dlpipe.data.datasets import decoded_images

    prep = runtime.preprocessing
    full_prep, reduced_prep = dataclasses.replace(prep, reduced_decode=False), dataclasses.replace(prep, reduced_decode=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        upscaled = []
        for number, path in enumerate(paths):
            with Image.open(path) as image:
                big = image.convert("RGB").resize((image.width * 3, image.height * 3), Image.BICUBIC)
            upscaled.append(str(Path(folder) / f"{number}.jpg"))
            big.save(upscaled[-1], quality=95)
        for name, files in (("the 245 shared photos", paths), ("the same, upscaled 3x", upscaled)):
            qualify = 0
            for path in files:
                with Image.open(path) as image:
                    qualify += min(image.size) >= 2 * reduced_prep.decode_side()
            outputs, rates = {}, {"full": 0.0, "reduced": 0.0}
            for _ in range(3):  # interleaved, best of three: the machine's other work comes and goes
                for label, variant in (("full", full_prep), ("reduced", reduced_prep)):
                    started = time.perf_counter()
                    decoded = np.stack([image.numpy() for image in decoded_images(files, None, variant, cache=False)])
                    rates[label] = max(rates[label], len(files) / (time.perf_counter() - started))
                    outputs[label] = np.concatenate([runtime.predict(decoded[start:start + batch_size])
                                                     for start in range(0, len(decoded), batch_size)])
            agreement = float(np.mean(outputs["full"].argmax(1) == outputs["reduced"].argmax(1)))
            rows.append((name, qualify, len(files), rates["full"], rates["reduced"], agreement))
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
