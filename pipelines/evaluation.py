"""`dlpipe evaluate`: the accuracy a deployed artifact really has on labelled data.

Images come from a class-per-folder directory, texts from a labelled TSV/CSV
file; both are read and preprocessed exactly as in training (the artifact's
preprocessing.json), so the number is comparable with the run's metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dlpipe.errors import DataError


def evaluate_artifact(artifact: str | Path, data: str | Path, batch_size: int = 32) -> dict[str, Any]:
    """Metrics of `artifact` (run folder, .keras, SavedModel folder or .tflite) on `data`.

    `data` is a class-per-folder directory for an image model, or a `text<TAB>label`
    file (.tsv/.txt, or .csv) for a text model.
    """
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.metrics import classification_report

    runtime = load_runtime(artifact)
    read = _text_batches if runtime.kind == "text" else _image_batches
    labels, batches, skipped = read(runtime, Path(data), batch_size)
    predicted = np.concatenate([runtime.predict(batch) for batch in batches]).argmax(axis=1)
    report = classification_report(labels, predicted.tolist(), runtime.class_names)
    report.update(artifact=str(artifact), data=str(data), skipped=skipped)
    return report


def _model_labels(runtime: Any, names: list[str], data: Path) -> list[int]:
    """Indices into the model's classes for label names from the data; unknown labels stop the evaluation."""
    unknown = sorted(set(names) - set(runtime.class_names))
    if unknown:
        raise DataError(str(data), f"labels {unknown} are not among the model's labels {runtime.class_names}")
    return [runtime.class_names.index(name) for name in names]


def _image_batches(runtime: Any, data: Path, batch_size: int) -> tuple[list[int], Iterator[np.ndarray], list[dict]]:
    from dlpipe.data.datasets import batched, decoded_images
    from dlpipe.data.images import scan_image_folder

    if not data.is_dir():
        raise DataError(str(data), "an image model is evaluated on a folder with one sub-folder of images per class")
    folder = scan_image_folder(data)
    labels = _model_labels(runtime, [folder.class_names[label] for label in folder.labels], data)
    images = batched(decoded_images(folder.paths, labels, runtime.preprocessing, cache=False), batch_size)
    skipped = [{"path": item.path, "reason": item.reason} for item in folder.skipped]
    return labels, (batch.numpy() for batch, _ in images), skipped


def _text_batches(runtime: Any, data: Path, batch_size: int) -> tuple[list[int], Iterator[list[str]], list[dict]]:
    from dlpipe.data.text import read_labelled_text

    if not data.is_file():
        raise DataError(str(data), "a text model is evaluated on a file of text<TAB>label lines (or .csv)")
    table = read_labelled_text([data])
    labels = _model_labels(runtime, table.labels, data)
    texts = table.texts
    skipped = [{"path": f"{path}:{line}", "reason": reason} for path, line, reason in table.skipped]
    return labels, (texts[i:i + batch_size] for i in range(0, len(texts), batch_size)), skipped
