"""Benchmark: the classics (issue 16): MLP vs small CNN on Fashion-MNIST and mnist-5k, and the DCGAN's Fréchet distance.

One command, from the repository root with the venv active (the machine is shared, so run it at low priority):

    nice -n 19 python bench/classics.py [--only fashion mnist5k gan] [--models small_cnn:0.5 ...] [--quick]

- Fashion-MNIST (builtin:fashion-mnist, its own 60k/10k split): `mlp` and `small_cnn` built by dlpipe's
  `build_classifier` (normalisation inside, float RGB pixels in [0, 255] at 28x28, gray replicated), Adam with
  cosine decay; test accuracy on all 10,000 test images.
- mnist-5k (4,000 train / 1,000 held out, stratified, seed 0): the same two models, the CNN with light
  augmentation (data.augment: rotation, zoom, translation).
- GAN: `make_dcgan()` on 20,000 Fashion-MNIST training images; after each epoch the Fréchet distance of 2,000
  generated images to 2,000 real test images, in the 128-d feature space of a small classifier trained on the
  60,000 labelled training images; the floor is two disjoint sets of 2,000 other real test images.

CPU time is measured with resource.getrusage (user + system, all threads of this process), so it does not
depend on how busy the shared machine is; wall time does. Results land in bench/results/classics/ (not
tracked): results.json, the sample grid per epoch, and the history CSVs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "classics"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """CPU and wall seconds of a block."""

    def __enter__(self) -> "Timer":
        self.cpu, self.wall = cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.cpu, self.wall = cpu_seconds() - self.cpu, time.perf_counter() - self.wall


def test_pass_timer():
    """A Keras callback adding up the CPU and wall seconds of fit's per-epoch validation passes (.cpu, .wall)."""
    import keras

    class TestPassTimer(keras.callbacks.Callback):
        cpu = wall = 0.0

        def on_test_begin(self, logs=None):
            self.started = (cpu_seconds(), time.perf_counter())

        def on_test_end(self, logs=None):
            self.cpu += cpu_seconds() - self.started[0]
            self.wall += time.perf_counter() - self.started[1]

    return TestPassTimer()


def train_classifier(backbone: str, data, epochs: int, batch_size: int, learning_rate: float,
                     augment: bool = False, width: float = 1.0) -> dict:
    """Train dlpipe's classifier for `backbone` on an ArrayDataset; test accuracy, CPU and wall time."""
    import keras

    from dlpipe.data.augment import augment_batch, build_augmenter
    from dlpipe.data.builtin_datasets import array_dataset
    from dlpipe.models.backbones import ScratchOptions, get_backbone
    from dlpipe.models.classifier import build_classifier

    keras.utils.set_random_seed(0)
    size = data.image_shape[0]
    train = array_dataset(data.train_images, data.train_labels).cache()
    train = train.shuffle(len(data.train_labels), seed=0, reshuffle_each_iteration=True).batch(batch_size)
    if augment:
        augmenter = build_augmenter(flip="none", rotation=0.03, zoom=0.08, translation=0.08, seed=0)
        train = train.map(lambda x, y: (augment_batch(augmenter, x), y))
    test = array_dataset(data.test_images, data.test_labels).batch(500)
    model = build_classifier(get_backbone(backbone), len(data.class_names), size, None,
                             scratch=ScratchOptions(width=width))
    steps = epochs * int(train.cardinality())
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    test_passes = test_pass_timer()
    with Timer() as timer:
        history = model.fit(train.prefetch(2), epochs=epochs, verbose=0, validation_data=test,
                            callbacks=[test_passes])
    accuracy = float(model.evaluate(test, verbose=0)[1])
    return {"backbone": backbone, "width": width, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
            "augment": augment, "parameters": model.count_params(), "test_accuracy": accuracy,
            "test_accuracy_per_epoch": [round(a, 4) for a in history.history["val_accuracy"]],
            # the per-epoch test passes only draw the curve: training's cost is the fit without them
            "train_cpu_min": round((timer.cpu - test_passes.cpu) / 60, 2),
            "train_wall_min": round((timer.wall - test_passes.wall) / 60, 2),
            "test_pass_cpu_min": round(test_passes.cpu / 60, 2), "fit_cpu_min": round(timer.cpu / 60, 2),
            "test_images": int(len(data.test_labels))}


def run_classifiers(name: str, configs: list[dict], limit: int | None, models: list[str] | None = None) -> list[dict]:
    from dlpipe.data.builtin_datasets import load_builtin

    if models:
        configs = [c for c in configs if c["backbone"] in models or f"{c['backbone']}:{c.get('width', 1.0):g}" in models]
    data = load_builtin(name, limit=limit)
    rows = []
    for config in configs:
        print(f"{name}: {config['backbone']} (width {config.get('width', 1.0)}) ...", flush=True)
        row = {"dataset": name, "split": data.split, **train_classifier(data=data, **config)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def run_gan(epochs: int, train_count: int, eval_count: int) -> dict:
    import numpy as np

    from dlpipe.data.builtin_datasets import load_builtin
    from dlpipe.models import dcgan, frechet
    from dlpipe.pipelines.gan.training import train_gan

    data = load_builtin("fashion-mnist")
    out = RESULTS / "gan"
    shutil.rmtree(out, ignore_errors=True)
    with Timer() as feature_timer:
        features = frechet.train_feature_model(data.train_images, data.train_labels, epochs=2)
    # the real test images split three ways: reference, and two halves for the floor
    order = np.random.default_rng(0).permutation(len(data.test_images))
    reference = data.test_images[order[:eval_count]]
    floor = frechet.real_floor(features, data.test_images[order[eval_count:3 * eval_count]])
    gan = dcgan.make_dcgan()
    monitor = frechet.FrechetMonitor(features, reference, count=eval_count, grid_dir=out / "grids")
    untrained = frechet.image_frechet_distance(features, reference, gan.generate(eval_count, seed=1))
    with Timer() as timer:
        history = train_gan(gan, dcgan.gan_dataset(data.train_images[:train_count], 64), epochs, out,
                            callbacks=[monitor])
    grid = dcgan.save_sample_grid(gan, out / "samples.png", count=64)
    return {"dataset": "fashion-mnist", "train_images": train_count, "eval_images": eval_count, "epochs": epochs,
            "generator_parameters": gan.generator.count_params(),
            "discriminator_parameters": gan.discriminator.count_params(),
            "feature_model": "conv32-pool-conv64-pool-dense128 ('features')-softmax, 2 epochs on 60k train images",
            "feature_cpu_min": round(feature_timer.cpu / 60, 2),
            "fid_floor_real_vs_real": round(floor, 3), "fid_untrained": round(untrained, 3),
            "fid_per_epoch": [round(v, 3) for v in history["fid"]],
            "d_loss_per_epoch": [round(v, 4) for v in history["d_loss"]],
            "g_loss_per_epoch": [round(v, 4) for v in history["g_loss"]],
            "train_cpu_min": round(timer.cpu / 60, 2), "train_wall_min": round(timer.wall / 60, 2),
            "samples": str(grid.relative_to(ROOT))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=["fashion", "mnist5k", "gan"], help="sections to run")
    parser.add_argument("--quick", action="store_true", help="tiny slices and 1 epoch: checks the script runs")
    parser.add_argument("--gan-epochs", type=int, default=5)
    parser.add_argument("--models", nargs="*", metavar="BACKBONE[:WIDTH]",
                        help="classifier rows to run (e.g. small_cnn:0.5); default: all")
    args = parser.parse_args()
    sections = args.only or ["fashion", "mnist5k", "gan"]
    quick = args.quick
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": date.today().isoformat(), "command": "nice -n 19 python bench/classics.py " + " ".join(sys.argv[1:]),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "quick": quick}
    if "fashion" in sections:
        results["fashion"] = run_classifiers("fashion-mnist", [
            {"backbone": "mlp", "epochs": 1 if quick else 30, "batch_size": 128, "learning_rate": 2e-3},
            {"backbone": "small_cnn", "epochs": 1 if quick else 3, "batch_size": 64, "learning_rate": 2e-3},
            # half width: a quarter of the compute, so 10 epochs fit the 10 CPU-minute budget
            {"backbone": "small_cnn", "width": 0.5, "epochs": 1 if quick else 10, "batch_size": 128,
             "learning_rate": 3e-3},
        ], limit=500 if quick else None, models=args.models)
    if "mnist5k" in sections:
        results["mnist5k"] = run_classifiers("mnist-5k", [
            {"backbone": "mlp", "epochs": 1 if quick else 40, "batch_size": 64, "learning_rate": 2e-3},
            {"backbone": "small_cnn", "epochs": 1 if quick else 20, "batch_size": 64, "learning_rate": 2e-3,
             "augment": True},
        ], limit=300 if quick else None, models=args.models)
    if "gan" in sections:
        print("gan ...", flush=True)
        results["gan"] = run_gan(1 if quick else args.gan_epochs, 640 if quick else 20000, 200 if quick else 2000)
        print(json.dumps(results["gan"]), flush=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'results.json'}")


if __name__ == "__main__":
    main()
