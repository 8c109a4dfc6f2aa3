"""Learning-rate finder (Smith 2017; fastai's `lr_find`): an exponential sweep of the rate over a few hundred steps.

The rate grows from `min_lr` to `max_lr` by the same factor each step while the
model trains on one batch per step; the loss, smoothed with a debiased
exponential moving average, falls, flattens and then blows up. Two classic
picks: a tenth of the rate at the smoothed minimum (`min10`, fastai's first
suggestion, conservative) and the rate where the smoothed loss falls fastest
against log(rate) (`steepest`). The model's weights are restored afterwards.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

import keras
import numpy as np


def lr_sweep(model: keras.Model, batches: Iterator[Any], loss: Any, optimizer: str = "adam", steps: int = 200,
             min_lr: float = 1e-7, max_lr: float = 10.0, pick: str = "min10", beta: float = 0.98,
             blowup: float = 4.0) -> dict[str, Any]:
    """Sweep and return {rates, losses, smoothed, minimum, steepest, chosen, pick} (plain floats, for JSON)."""
    from dlpipe.models.trace_once import build_before_fit
    from dlpipe.pipelines.training.keras_fit import make_optimizer

    saved = model.get_weights()
    factor = (max_lr / min_lr) ** (1.0 / max(steps - 1, 1))
    opt = make_optimizer(optimizer, min_lr)
    model.compile(optimizer=opt, loss=loss)
    first = next(batches)
    build_before_fit(model, first)
    batches = itertools.chain([first], batches)
    rates: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    try:
        for step in range(steps):
            rate = min_lr * factor**step
            opt.learning_rate.assign(rate)
            x, y = next(batches)
            value = float(np.asarray(model.train_on_batch(x, y)).reshape(-1)[0])
            if not math.isfinite(value):
                break
            average = beta * average + (1 - beta) * value
            smooth = average / (1 - beta ** (step + 1))
            rates.append(rate)
            raw.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            if step > 10 and smooth > blowup * best:
                break
    finally:
        model.set_weights(saved)
    if len(rates) < 3:
        raise ValueError("the learning-rate sweep diverged at once; lower min_lr")
    return {**suggestions(rates, smoothed, pick), "rates": rates, "losses": raw, "smoothed": smoothed,
            "steps": len(rates), "min_lr": min_lr, "max_lr": max_lr}


def suggestions(rates: list[float], smoothed: list[float], pick: str = "min10") -> dict[str, Any]:
    """The two picks of a sweep and the chosen one; both lie within the swept range."""
    values = np.asarray(smoothed)
    lowest = int(np.argmin(values))
    minimum = rates[lowest]
    # steepest descent of the smoothed loss against log(rate), before the minimum (after it the loss rises anyway)
    end = max(lowest, 2)
    slopes = np.gradient(values[:end + 1], np.log(np.asarray(rates[:end + 1])))
    start = min(len(slopes) - 1, max(1, len(slopes) // 10))  # the first steps' slope is mostly the EMA warming up
    steepest = rates[start + int(np.argmin(slopes[start:]))]
    chosen = steepest if pick == "steepest" else max(minimum / 10.0, rates[0])
    return {"minimum": float(minimum), "steepest": float(steepest), "chosen": float(chosen), "pick": pick}


def head_model(model: keras.Model, backbone_layer: str, feature_size: int) -> keras.Model:
    """The layers after the backbone as a model on features; they share the classifier's weights."""
    names = [layer.name for layer in model.layers]
    position = names.index(backbone_layer)
    inputs = keras.Input(shape=(feature_size,), dtype="float32", name="features")
    x = inputs
    for layer in model.layers[position + 1:]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")
