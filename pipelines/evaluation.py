"""`dlpipe evaluate`: the accuracy a deployed artifact really has on labelled data.

The artifact's task reads the data (a class-per-folder directory for images,
a labelled TSV/CSV file for text, images/ + masks/ for segmentation, COCO
box annotations for detection) and prepares it exactly as in training
(the artifact's preprocessing), so the number is comparable with the run's
metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import DataError


def evaluate_artifact(artifact: str | Path, data: str | Path, batch_size: int = 32,
                      choice: str = "auto") -> dict[str, Any]:
    """Metrics of `artifact` (run folder, .keras, SavedModel folder or .tflite) on the labelled `data`."""
    from dlpipe.models.runtimes import load_runtime

    runtime = load_runtime(artifact, choice)
    task = runtime.task
    labelled = task.labelled_data(Path(data))
    task.check_labels(labelled.labels, runtime.class_names, str(data))
    label_of = dict(zip(labelled.inputs.ids, labelled.labels))
    keys: list[str] = []
    outputs: list[np.ndarray] = []
    skipped = list(labelled.skipped)
    for prepared in task.batches(labelled.inputs, runtime.preprocessing, batch_size):
        skipped += [{"path": key, "reason": reason} for key, reason in prepared.errors.items()]
        if prepared.readable:
            keys += prepared.readable
            outputs.append(runtime.predict(prepared.batch))
    if not keys:
        raise DataError(str(data), "no readable labelled inputs to evaluate on")
    report = task.score([label_of[key] for key in keys], np.concatenate(outputs), runtime.class_names)
    report.update(artifact=str(runtime.path), artifact_format=runtime.format, data=str(data), skipped=skipped)
    report["summary"] = task.summary_lines(report)
    return report
