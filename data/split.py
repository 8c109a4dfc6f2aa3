"""Stratified train/validation split with a fixed seed."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, validation), with each class split in the same proportion.

    Each class with at least two items puts round(n * val_fraction) of them,
    but at least one, into validation; a single item stays in training. The
    same labels, fraction and seed always give the same split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1). Received: val_fraction={val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = int(round(len(members) * val_fraction))
        if val_fraction > 0 and len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def stratified_folds(labels: Sequence[int], folds: int, seed: int) -> list[int]:
    """The fold (0 .. folds-1) of each item: each class dealt round-robin over the folds after a seeded shuffle.

    Every fold gets each class in nearly the same proportion; the same labels,
    fold count and seed always give the same assignment.
    """
    if folds < 2:
        raise ValueError(f"`folds` must be at least 2. Received: folds={folds}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # the next class starts where this one ended, so fold sizes stay even
    return assignment.tolist()


def holdout_split(labels: Sequence[int], val_fraction: float, folds: int, fold: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, validation): fold `fold` of `folds` stratified folds when `folds` (cross-validation), else a
    stratified `val_fraction` split. What every load stage of a classification task splits with."""
    if not folds:
        return stratified_split(labels, val_fraction, seed)
    fold_of = stratified_folds(labels, folds, seed)
    return [i for i, f in enumerate(fold_of) if f != fold], [i for i, f in enumerate(fold_of) if f == fold]
