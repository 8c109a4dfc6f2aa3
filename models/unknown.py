"""The "unknown" answer: how far a photo's backbone features are from the training classes' (cosine).

A softmax over ants and bees is confident on a shoe: the two probabilities must
add to 1, so its maximum (or the logits, or their energy) says little about
whether the photo is of either. The backbone's pooled features do: a photo of
another subject lies far from the training photos in that space. The score is
the cosine similarity of a photo's features to the nearest class mean of the
training photos' (unit) features: on the default image run it rejected every
one of 233 out-of-distribution photos where the softmax scores rejected 9%, at
the same 97% in-distribution keep share, and it matched 10 nearest neighbours
with C vectors instead of a bank of every photo (BENCHMARKS.md, "Unknown
answer"). The threshold is a low quantile of held-out in-distribution scores
(`threshold_for`), never of outlier photos.

`UnknownGate` (models/unknown_layer.py) puts the check inside the model: it
appends an "unknown" column that is 1 (and zeroes the classes) below the
threshold, so every export (Keras, SavedModel, TFLite, and MediaPipe reading
the .tflite's labels) answers `unknown` from the same graph.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

UNKNOWN_LABEL = "unknown"
GATE_LAYER = "unknown_gate"


def unit_rows(features: Any) -> np.ndarray:
    """Rows scaled to length 1 (cosine similarity is then a dot product)."""
    x = np.asarray(features, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_similarity(features: Any, bank: Any, k: int = 1) -> np.ndarray:
    """Mean cosine similarity of each row of `features` to its k nearest rows of `bank`."""
    similarity = unit_rows(features) @ unit_rows(bank).T
    top = -np.sort(-similarity, axis=1)[:, :k]
    return top.mean(axis=1)


def fold_indices(labels: Sequence[int], folds: int, seed: int = 0) -> list[np.ndarray]:
    """Stratified folds: each class's examples shuffled (seeded) and dealt round-robin."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        for i, index in enumerate(members):
            parts[i % folds].append(int(index))
    return [np.asarray(sorted(part), int) for part in parts]


def class_means(features: Any, labels: Sequence[int]) -> np.ndarray:
    """(classes present, D): the unit mean of each class's unit feature rows."""
    x, labels = unit_rows(features), np.asarray(labels)
    return unit_rows(np.stack([x[labels == c].mean(axis=0) for c in np.unique(labels)]))


def class_mean_similarity(features: Any, means: Any) -> np.ndarray:
    """Cosine similarity of each row to its nearest class mean (what `UnknownGate` computes)."""
    return (unit_rows(features) @ np.asarray(means, np.float32).T).max(axis=1)


def held_out_similarity(features: Any, labels: Sequence[int], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each example's score against the class means of the other folds: the score of a photo the means were not
    computed from, as a new photo's will be."""
    x, labels = np.asarray(features, np.float32), np.asarray(labels)
    scores = np.zeros(len(x), np.float32)
    for held in fold_indices(labels, folds, seed):
        rest = np.setdiff1d(np.arange(len(x)), held)
        scores[held] = class_mean_similarity(x[held], class_means(x[rest], labels[rest]))
    return scores


def threshold_for(held_out_scores: Any, keep: float) -> float:
    """The highest threshold that keeps at least `keep` of these in-distribution scores (score >= threshold)."""
    scores = np.sort(np.asarray(held_out_scores, np.float64))
    if not len(scores):
        raise ValueError("threshold_for needs at least one held-out score")
    return float(scores[int(np.floor((1.0 - keep) * len(scores) + 1e-9))])


def with_unknown(model: Any, features: Any, means: Any, threshold: float) -> Any:
    """`model` with an "unknown" column appended to its probabilities (it shares `model`'s layers and weights).

    `features` is the tensor of `model`'s graph holding the pooled backbone features; `means` the unit class means.
    """
    import keras

    from dlpipe.models.unknown_layer import UnknownGate

    means = np.asarray(means, np.float32)
    gate = UnknownGate(means=len(means), features=means.shape[1], threshold=threshold, name=GATE_LAYER)
    outputs = gate([features, model.output])
    gate.means.assign(means.T)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_unknown"[-60:])
