"""Exact and near-duplicate images: a SHA-256 of each file's bytes, and a 64-bit difference hash (dHash) of its
pixels, which survives re-encoding, resizing and small edits but not a different photo of the same scene.

Duplicates inflate every figure when copies land on both sides of a split; a copy in two class folders is a
label conflict the model cannot win.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Sequence

import numpy as np

# differing bits (of 64) up to which two difference hashes count as the same picture
NEAR_DUPLICATE_BITS = 4


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def exact_groups(paths: Sequence[str]) -> list[list[int]]:
    """Indices of files with identical bytes, one list per group of two or more, in path order."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(paths):
        by_digest[file_digest(path)].append(index)
    return [group for group in by_digest.values() if len(group) > 1]


def difference_hash(path: str) -> int:
    """dHash: the grey image at 9x8 pixels, one bit per horizontal neighbour pair (is the left one brighter)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (64, 64))  # JPEG: decode at reduced scale, the hash needs 9x8 pixels
        small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), np.int16)
    bits = (small[:, :-1] > small[:, 1:]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def near_pairs(hashes: Sequence[int], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[int, int, int]]:
    """(i, j, differing bits) for every pair i < j whose hashes differ in at most `max_bits` bits."""
    values = np.asarray([h & ((1 << 64) - 1) for h in hashes], np.uint64)
    pairs = []
    for i in range(len(values) - 1):
        distance = np.bitwise_count(values[i + 1:] ^ values[i])
        for offset in np.flatnonzero(distance <= max_bits):
            pairs.append((i, i + 1 + int(offset), int(distance[offset])))
    return pairs


def cosine_pairs(features: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine similarity) for every pair i < j of feature rows at or above `threshold`."""
    x = np.asarray(features, np.float64)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    pairs = []
    for start in range(0, len(x), 512):
        block = x[start:start + 512] @ x.T
        for row, col in zip(*np.nonzero(block >= threshold)):
            i = start + int(row)
            if i < col:
                pairs.append((i, int(col), float(block[row, col])))
    return pairs
