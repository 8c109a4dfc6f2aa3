"""`dlpipe evaluate`: the accuracy a deployed artifact really has on a labelled folder.

The folder is read and preprocessed exactly as in training (the artifact's
preprocessing.json), so the number is comparable with the run's metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import DataError


def evaluate_artifact(artifact: str | Path, data: str | Path, batch_size: int = 32) -> dict[str, Any]:
    """Metrics of `artifact` (run folder, .keras, SavedModel folder or .tflite) on `data` (class-per-folder)."""
    from dlpipe.data.datasets import batched, decoded_images
    from dlpipe.data.images import scan_image_folder
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.metrics import classification_report

    runtime = load_runtime(artifact)
    folder = scan_image_folder(data)
    unknown = sorted(set(folder.class_names) - set(runtime.class_names))
    if unknown:
        raise DataError(str(data), f"classes {unknown} are not among the model's labels {runtime.class_names}")
    labels = [runtime.class_names.index(folder.class_names[label]) for label in folder.labels]
    probabilities = []
    for images, _ in batched(decoded_images(folder.paths, labels, runtime.preprocessing, cache=False), batch_size):
        probabilities.append(runtime.predict(images.numpy()))
    predicted = np.concatenate(probabilities).argmax(axis=1)
    report = classification_report(labels, predicted.tolist(), runtime.class_names)
    report.update(artifact=str(artifact), data=str(data), skipped=[{"path": i.path, "reason": i.reason} for i in folder.skipped])
    return report
