"""image-classify's recipes: the settings measured for from-scratch backbones and the classic 28-pixel sets.

The dataclass defaults are for a pretrained backbone on photos. A from-scratch backbone (`mlp`, `small_cnn`)
has no weights to load and, on grayscale garments or digits, wants no photo augmentation: a flipped or rotated
garment is another garment's shape (BENCHMARKS.md, "Classics": the small CNN scored 0.9305 without augmentation
and 0.9082 with it). Figures: BENCHMARKS.md, "Recipes"; an explicit --set always wins.
"""

from __future__ import annotations

from dlpipe.data.builtin_datasets import HANDWRITTEN_DIGITS, NATIVE_SIZES, builtin_key
from dlpipe.pipelines.recipes import Choices, Recipe

SCRATCH_BACKBONES = ("mlp", "small_cnn")
CLASSICS = "BENCHMARKS.md, Classics"


def _scratch(choices: Choices) -> bool:
    return choices["model.backbone"] in SCRATCH_BACKBONES


def _on_digits(backbone: str):
    return lambda choices: choices["model.backbone"] == backbone and builtin_key(choices.data()) in HANDWRITTEN_DIGITS


def _cosine(epochs: int, batch_size: int, learning_rate: float) -> dict:
    # a fixed budget decayed to 0: no early stop, the best epoch by accuracy (the loss rises as scores sharpen)
    return {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "lr_schedule": "cosine",
            "early_stopping_patience": 0, "monitor": "val_accuracy"}


def _native_size(choices: Choices) -> dict:
    return {"model": {"image_size": NATIVE_SIZES[builtin_key(choices.data())]}}


RECIPES = (
    Recipe("from-scratch", _scratch, {"model": {"weights": "none"}, "augment": {"enabled": False}},
           "the backbone has no pretrained weights; photo augmentation hurts garments and digits (" + CLASSICS + ")"),
    Recipe("mlp", lambda c: c["model.backbone"] == "mlp", {"train": _cosine(30, 128, 2e-3)},
           "Fashion-MNIST 0.908 after 30 epochs in about 5 CPU-minutes (" + CLASSICS + ")"),
    Recipe("small_cnn", lambda c: c["model.backbone"] == "small_cnn",
           {"model": {"width": 0.5}, "train": _cosine(10, 128, 3e-3)},
           "Fashion-MNIST 0.9305 at half width in 10 CPU-minutes (" + CLASSICS + ")"),
    Recipe("builtin-native-size", lambda c: _scratch(c) and builtin_key(c.data()) in NATIVE_SIZES, _native_size,
           "a from-scratch model reads a classic set at its own size (28 px; digits 8 px)"),
    Recipe("mlp-digits", _on_digits("mlp"), {"train": {"epochs": 40, "batch_size": 64}},
           "mnist-5k 0.960 after 40 epochs (" + CLASSICS + ")"),
    Recipe("small_cnn-digits", _on_digits("small_cnn"),
           {"model": {"width": 1.0}, "train": _cosine(20, 64, 2e-3),
            "augment": {"enabled": True, "flip": "none", "rotation": 0.03, "zoom": 0.08, "translation": 0.08,
                        "brightness": 0.0, "contrast": 0.0}},
           "mnist-5k 0.992 with light augmentation, no flips (" + CLASSICS + ")"),
)
