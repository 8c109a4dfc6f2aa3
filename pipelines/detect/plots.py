"""The detection run's pictures: precision-recall curves per class, and validation photos with their boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from dlpipe import atomic


def plot_pr_curves(report: dict[str, Any], path: str | Path) -> Path:
    """Each class's precision against recall at IoU 0.5 (COCO's interpolated curve), its AP50 in the legend."""
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    for name, curve in report.get("pr_curves", {}).items():
        ap50 = report["per_class"].get(name, {}).get("ap50", 0.0)
        axis.plot(curve["recall"], curve["precision"], label=f"{name} (AP50 {ap50:.3f})")
    axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02),
             title=f"validation, IoU 0.5: AP50 {report['ap50']:.3f}, mAP {report['map']:.3f}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    return _save(figure, path)


def plot_sample_detections(photos: Sequence[str], objects: Sequence[Sequence[Any]], rows: Sequence[np.ndarray],
                           class_names: list[str], min_score: float, path: str | Path) -> Path:
    """Validation photos: true boxes dashed white, the model's boxes (score >= min_score) in class colours."""
    from PIL import Image

    count = len(photos)
    columns = min(count, 3)
    lines = (count + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(3.4 * columns, 3.4 * lines), squeeze=False)
    colours = plt.get_cmap("tab10")
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        with Image.open(photos[index]) as image:
            axis.imshow(np.asarray(image.convert("RGB")))
        for obj in objects[index]:
            x1, y1, x2, y2 = obj.box
            axis.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=1))
        for x1, y1, x2, y2, score, label in rows[index][rows[index][:, 4] >= min_score] if len(rows[index]) else ():
            colour = colours(int(label) % 10)
            axis.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.5))
            axis.text(x1, y1, f"{class_names[int(label)]} {score:.2f}", color="white", fontsize=6,
                      bbox={"facecolor": colour, "pad": 1, "lw": 0})
        axis.set_title(Path(photos[index]).name, fontsize=7)
    figure.suptitle(f"validation photos: true boxes dashed, predicted (score >= {min_score:g}) in colour", fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)
    return path
