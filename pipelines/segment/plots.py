"""The segmentation run's picture: validation photos with their true and predicted masks side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlpipe import atomic  # noqa: E402


def plot_sample_predictions(images: np.ndarray, truth: np.ndarray, predicted: np.ndarray, class_names: list[str],
                            path: str | Path, title: str = "") -> Path:
    """One row per photo: the photo, the true mask over it, the predicted mask over it (class colours, legend)."""
    from matplotlib.patches import Patch

    from dlpipe.models.tasks.segment import PALETTE, overlay

    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows + 0.6), squeeze=False)
    for row in range(rows):
        photo = np.clip(images[row], 0, 255).astype(np.uint8)
        accuracy = float(np.mean(truth[row] == predicted[row]))
        for column, (picture, label) in enumerate(((photo, "photo"), (overlay(photo, truth[row]), "true mask"),
                                                   (overlay(photo, predicted[row]), f"predicted ({accuracy:.0%} px right)"))):
            axes[row, column].imshow(picture)
            axes[row, column].set_title(label, fontsize=8)
            axes[row, column].axis("off")
    handles = [Patch(color=np.asarray(PALETTE[i % len(PALETTE)]) / 255, label=name)
               for i, name in enumerate(class_names) if i > 0]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)
    return path
