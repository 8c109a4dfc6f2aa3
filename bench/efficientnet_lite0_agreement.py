"""Benchmark: does the Keras EfficientNet-Lite0 port predict what the original weights predict in PyTorch?

torch is needed for this run only, in a throw-away venv whose packages the project venv can see
(one command from the repository root, after the one-time venv set-up):

    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch==2.13.0 numpy pillow
    PYTHONPATH=/tmp/torchref/lib/python3.11/site-packages .venv/bin/python bench/efficientnet_lite0_agreement.py

Every file in ../shared/data/hymenoptera/train/{ants,bees} that PIL can decode (a GIF gives its
first frame as RGB) is preprocessed once by `preprocess_photo` and the same array goes to both
models, so differences come from the port alone. Prints a markdown table: top-1 agreement,
logit/probability differences, and how often each model puts ImageNet's ant (310) / bee (309)
class first and in its top 5.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference_efficientnet_lite0 import (  # noqa: E402
    HYMENOPTERA, IMAGENET_CLASS, load_reference, preprocess_photo, reference_logits,
)


def load_photos() -> tuple[list[Path], np.ndarray, np.ndarray, list[str]]:
    """Paths, preprocessed pixels, ImageNet target per photo, and the files skipped as undecodable."""
    paths, pixels, targets, skipped = [], [], [], []
    for folder, target in IMAGENET_CLASS.items():
        for path in sorted((HYMENOPTERA / folder).iterdir()):
            try:
                pixels.append(preprocess_photo(path))
            except (OSError, UnidentifiedImageError, ValueError):
                skipped.append(f"{folder}/{path.name}")
                continue
            paths.append(path)
            targets.append(target)
    return paths, np.stack(pixels), np.array(targets), skipped


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def hit_rate(logits: np.ndarray, targets: np.ndarray, k: int) -> float:
    return float((np.argsort(-logits, axis=1)[:, :k] == targets[:, None]).any(axis=1).mean())


def main() -> None:
    import torch

    from dlpipe.models import efficientnet_lite as lite

    torch.set_num_threads(2)
    started = time.perf_counter()
    paths, pixels, targets, skipped = load_photos()
    keras_logits = lite.efficientnet_lite0(weights="imagenet").predict(pixels, batch_size=16, verbose=0)
    torch_logits = reference_logits(load_reference(lite.imagenet_weights_path()), pixels)
    keras_top5, torch_top5 = np.argsort(-keras_logits, 1)[:, :5], np.argsort(-torch_logits, 1)[:, :5]
    agree1 = float((keras_top5[:, 0] == torch_top5[:, 0]).mean())
    agree5 = float((keras_top5 == torch_top5).all(axis=1).mean())
    logit_diff = np.abs(keras_logits - torch_logits)
    prob_diff = np.abs(softmax(keras_logits.astype(np.float64)) - softmax(torch_logits.astype(np.float64)))
    gif = sum(path.suffix.lower() == ".gif" for path in paths)

    print(f"\nEfficientNet-Lite0, Keras port vs PyTorch reference, {date.today()}: {len(paths)} hymenoptera train "
          f"photos ({(targets == 310).sum()} ants, {(targets == 309).sum()} bees; {gif} GIF decoded as its first "
          f"frame; skipped as undecodable: {', '.join(skipped) or 'none'}); {time.perf_counter() - started:.0f} s\n")
    print("| measure | Keras port | PyTorch reference |")
    print("| --- | --- | --- |")
    print(f"| top-1 class agreement with the reference | {agree1:.4f} ({agree1 * len(paths):.0f}/{len(paths)}) | - |")
    print(f"| identical ordered top-5 | {agree5:.4f} | - |")
    print(f"| max / mean abs logit difference | {logit_diff.max():.2e} / {logit_diff.mean():.2e} | - |")
    print(f"| max abs softmax probability difference | {prob_diff.max():.2e} | - |")
    print(f"| right ImageNet class (ant 310 / bee 309) top-1 | {hit_rate(keras_logits, targets, 1):.3f} "
          f"| {hit_rate(torch_logits, targets, 1):.3f} |")
    print(f"| right ImageNet class top-5 | {hit_rate(keras_logits, targets, 5):.3f} "
          f"| {hit_rate(torch_logits, targets, 5):.3f} |")
    for folder, target in IMAGENET_CLASS.items():
        mask = targets == target
        port = [hit_rate(keras_logits[mask], targets[mask], k) for k in (1, 5)]
        reference = [hit_rate(torch_logits[mask], targets[mask], k) for k in (1, 5)]
        print(f"| {folder} only: top-1 / top-5 | {port[0]:.3f} / {port[1]:.3f} "
              f"| {reference[0]:.3f} / {reference[1]:.3f} |")


if __name__ == "__main__":
    main()
