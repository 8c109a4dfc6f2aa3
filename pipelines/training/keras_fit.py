"""Helpers of the train stage: optimizers, class weights, history files."""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import keras


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    clipnorm: float | None = None,
    ema_momentum: float = 0.0,
) -> keras.optimizers.Optimizer:
    """The optimizer the config names, with its learning rate (or schedule), optional gradient clipping and
    optional moving average of the weights (ema_momentum > 0)."""
    extra: dict = {"clipnorm": clipnorm}
    if ema_momentum > 0:
        extra.update(use_ema=True, ema_momentum=ema_momentum)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=momentum > 0, **extra)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum, **extra)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **extra)
    return keras.optimizers.Adam(learning_rate, **extra)


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> dict[int, float]:
    """weight_c = n / (k * n_c): each class contributes equally to the loss."""
    counts = Counter(labels)
    total = len(labels)
    return {c: total / (num_classes * counts[c]) if counts[c] else 0.0 for c in range(num_classes)}


def fit_verbosity(progress: str) -> int:
    """Keras `verbose`: a live bar on a terminal, one line per epoch in logs."""
    if progress == "bar":
        return 1
    if progress == "epochs":
        return 2
    if progress == "none":
        return 0
    return 1 if sys.stdout.isatty() else 2


def read_history(path: str | Path) -> dict[str, list[float]]:
    """A CSVLogger file -> {metric: [value per epoch]}.

    A run killed between logging an epoch and backing it up repeats that epoch
    on resume; the later row wins.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    rows: dict[int, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                rows[int(row["epoch"])] = row
            except (KeyError, ValueError):
                continue
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key == "epoch":
                continue
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                history.setdefault(key, []).append(math.nan)
    return history


def best_so_far(history: dict[str, list[float]], monitor: str) -> float | None:
    """Best monitored value in a history, to seed a resumed checkpoint callback."""
    values = [v for v in history.get(monitor, []) if not math.isnan(v)]
    if not values:
        return None
    return max(values) if maximised(monitor) else min(values)


def maximised(monitor: str) -> bool:
    """Whether higher is better for a monitored metric: everything but a loss (accuracy, AUC)."""
    return monitor.removeprefix("val_") != "loss"
