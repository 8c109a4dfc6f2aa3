"""Benchmark (issue 14): how the default recipe was chosen cheaply: linear probes on cached features, 5-fold CV.

One command, from the repository root with the venv active:

    nice -n 10 python bench/probe_feature_cv.py [--data ../shared/data/hymenoptera/train] [--backbones ...]

For each EfficientNet-Lite backbone it computes the frozen features of every photo and of its mirror once
(dlpipe's own preprocessing and feature model; cached in bench/results/features_<backbone>.npz), then
scores a logistic-regression head (dlpipe.models.probe.fit_logistic) by 5-fold stratified CV with the same
folds as `train.cv_folds=5` (seed 42) for a grid of C, with and without flip TTA, and with mirrored
copies added to the training features. Prints a markdown table of pooled accuracy ± sd over folds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


def features(backbone: str, data: str):
    import numpy as np

    cache = ROOT / "bench" / "results" / f"features_{backbone}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return stored["labels"], stored["plain"], stored["flip"]
    import tensorflow as tf

    from dlpipe.data.images import scan_image_folder
    from dlpipe.data.preprocess import ImagePreprocessing, load_image
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier
    from dlpipe.models.probe import feature_model

    folder = scan_image_folder(data, (".jpg", ".jpeg", ".png", ".gif", ".bmp"), True)
    spec = get_backbone(backbone)
    prep = ImagePreprocessing(spec.input_size, spec.resize)
    extractor = feature_model(build_classifier(spec, 2, spec.input_size, "imagenet"), "backbone")
    images = np.concatenate([b.numpy() for b in tf.data.Dataset.from_tensor_slices(folder.paths)
                             .map(lambda p: load_image(p, prep)).batch(32)])
    plain = extractor.predict(images, batch_size=32, verbose=0)
    flip = extractor.predict(images[:, :, ::-1], batch_size=32, verbose=0)
    labels = np.asarray(folder.labels)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, labels=labels, plain=plain, flip=flip)
    return labels, plain, flip


def cross_validate(labels, plain, flip, c: float, tta: bool, mirrored_copies: bool) -> tuple[float, float]:
    import numpy as np

    from dlpipe.data.split import stratified_folds
    from dlpipe.models.probe import fit_logistic, predict_logistic

    folds = np.asarray(stratified_folds(labels, 5, 42))
    correct, accuracies = 0, []
    for k in range(5):
        train, val = folds != k, folds == k
        x, y = plain[train], labels[train]
        if mirrored_copies:
            x, y = np.concatenate([x, flip[train]]), np.concatenate([y, y])
        kernel, bias = fit_logistic(x, y, 2, c)
        p = predict_logistic(plain[val], kernel, bias)
        if tta:
            p = (p + predict_logistic(flip[val], kernel, bias)) / 2
        hits = int((p.argmax(1) == labels[val]).sum())
        correct += hits
        accuracies.append(hits / val.sum())
    return correct / len(labels), float(np.std(accuracies, ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--backbones", nargs="*", default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    args = parser.parse_args()
    print("| backbone | C | probe | probe + flip TTA | probe on photos + mirrors, flip TTA |")
    print("| --- | --- | --- | --- | --- |")
    for backbone in args.backbones:
        labels, plain, flip = features(backbone, args.data)
        for c in C_GRID:
            cells = [cross_validate(labels, plain, flip, c, tta, copies)
                     for tta, copies in ((False, False), (True, False), (True, True))]
            print(f"| {backbone} | {c:g} | " + " | ".join(f"{a:.3f} ± {sd:.3f}" for a, sd in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
