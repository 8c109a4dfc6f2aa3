"""Temperature scaling (Guo et al., 2017) and the expected calibration error, in NumPy.

A classifier trained to a low loss on a few hundred examples says 0.99 where
it is right four times in five. Dividing its logits by one number T > 1 before
the softmax softens every score without changing any answer (the argmax is
the same); T is chosen to minimise the negative log-likelihood on predictions
of examples the shipped weights never trained on. `fold_temperature` then
builds T into the model's last Dense layer, so every export carries it.

Logits here are log-probabilities (a row's constant shift does not change the
softmax), so the fit works on any model's softmax outputs. A model that
averages several views (test-time flips) gives one logit array per view:
the calibrated output is the mean of the views' tempered softmaxes, which is
what the model does once T is folded into the layer the views share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
LOG_T_BOUNDS = (-3.0, 3.0)  # T between 0.05 and 20
_TINY = 1e-30


def as_logits(probabilities: Any) -> np.ndarray:
    """Log-probabilities: logits up to a per-row constant, which the softmax ignores."""
    return np.log(np.maximum(np.asarray(probabilities, np.float64), _TINY))


def tempered(logits: Any, temperature: float) -> np.ndarray:
    """softmax(logits / T), averaged over views when `logits` is (views, N, classes)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    exp = np.exp(z)
    probabilities = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities.mean(axis=0) if probabilities.ndim == 3 else probabilities


def negative_log_likelihood(probabilities: Any, labels: Any) -> float:
    """Mean -log p(true class)."""
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, int)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], _TINY))))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T): a bounded 1-D search over log T."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, int)
    if not len(labels):
        raise ValueError("fit_temperature needs at least one labelled prediction")
    result = minimize_scalar(lambda log_t: negative_log_likelihood(tempered(logits, float(np.exp(log_t))), labels),
                             bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def reliability_bins(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Equal-width bins of the top score in [0, 1]: each bin's count, mean confidence and accuracy."""
    p = np.asarray(probabilities, np.float64)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == np.asarray(labels, int))
    index = np.minimum((confidence * bins).astype(int), bins - 1)  # a score of exactly 1.0 goes in the last bin
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append({"low": b / bins, "high": (b + 1) / bins, "count": count,
                     "confidence": float(confidence[members].mean()) if count else None,
                     "accuracy": float(correct[members].mean()) if count else None})
    return rows


def expected_calibration_error(probabilities: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """Sum over bins of (share of examples) x |accuracy - mean confidence| (15 equal-width bins of the top score)."""
    rows = reliability_bins(probabilities, labels, bins)
    total = sum(row["count"] for row in rows)
    if not total:
        return 0.0
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows if row["count"]))


def calibration_summary(logits: Any, labels: Any, temperature: float) -> dict[str, Any]:
    """ECE and NLL before (T = 1) and after (T) on the given predictions, with both reliability tables."""
    before, after = tempered(logits, 1.0), tempered(logits, temperature)
    return {"temperature": temperature, "count": int(len(np.asarray(labels))), "bins": ECE_BINS,
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            "nll_before": negative_log_likelihood(before, labels),
            "nll_after": negative_log_likelihood(after, labels),
            "reliability_before": reliability_bins(before, labels),
            "reliability_after": reliability_bins(after, labels)}


def fold_temperature(model: Any, temperature: float) -> Any:
    """Divide the logits of `model`'s softmax head by T, in place: the head's kernel and bias are scaled by 1/T.

    softmax((W x + b) / T) = softmax((W / T) x + b / T), so the model (and anything that shares the layer, such
    as a test-time-flip wrapper) returns calibrated scores with no new operation, in every export format.
    Raises ValueError when the model does not end in a Dense layer with a softmax activation.
    """
    head = softmax_head(model)
    if head is None:
        raise ValueError(f"model {getattr(model, 'name', '')!r} does not end in a Dense layer with a softmax")
    head.set_weights([weight / temperature for weight in head.get_weights()])
    return model


def softmax_head(model: Any) -> Any:
    """The Dense softmax layer that produces `model`'s outputs (searched through nested models), or None."""
    import keras

    last = model.layers[-1] if getattr(model, "layers", None) else None
    if isinstance(last, keras.Model):
        return softmax_head(last)
    if last is not None and last.name == "tta_mean":  # a test-time-flip wrapper: its views share the inner model
        inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        return softmax_head(inner[0]) if len(inner) == 1 else None
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
        return last
    return None
