"""The points task's test data: two rings of 2-D points, written as the CSV `dlpipe run points` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_circle(path: Path, count: int = 160, seed: int = 0) -> Path:
    """Points inside radius 2 ('in') and between radius 3.5 and 5 ('out'), half marked train, half test."""
    rng = np.random.default_rng(seed)
    radius = np.where(np.arange(count) % 2 == 0, rng.uniform(0, 2, count), rng.uniform(3.5, 5, count))
    angle = rng.uniform(0, 2 * np.pi, count)
    rows = ["x,y,label,split"] + [f"{r * np.sin(a)},{r * np.cos(a)},{'in' if i % 2 == 0 else 'out'},"
                                  f"{'train' if i % 4 < 2 else 'test'}"
                                  for i, (r, a) in enumerate(zip(radius, angle))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
