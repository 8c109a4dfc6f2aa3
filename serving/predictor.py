"""Classify image files with a trained run, a `.keras` file or a named pretrained model.

Inputs go through `dlpipe.data.preprocess`, the same code that prepared the
training images, so predictions match what evaluation measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from dlpipe.data.images import check_image_file
from dlpipe.data.preprocess import ImagePreprocessing, load_image
from dlpipe.errors import DataError
from dlpipe.models import artifacts


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders searched recursively for image files (sorted); missing paths are errors."""
    from dlpipe.data.images import IMAGE_EXTENSIONS

    paths: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.is_file():
            paths.append(str(path))
        else:
            raise DataError(item, "no such file or folder")
    return paths


@dataclass
class Prediction:
    """Top-k labels for one input, or the reason it could not be read."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "label": self.top[0][0], "score": self.top[0][1],
                "top": [{"label": label, "score": score} for label, score in self.top]}


class ImagePredictor:
    """A Keras image classifier with its labels and preprocessing."""

    def __init__(self, model: Any, class_names: list[str], preprocessing: ImagePreprocessing):
        self.model = model
        self.class_names = class_names
        self.preprocessing = preprocessing

    @classmethod
    def load(cls, source: str) -> "ImagePredictor":
        """A run folder, a `.keras` file (labels.txt and preprocessing.json beside it) or a named model."""
        from dlpipe.models.pretrained import NAMED_MODELS

        path = Path(source)
        if not path.exists() and source in NAMED_MODELS:
            named = NAMED_MODELS.get(source)()
            return cls(named.model, named.class_names, named.preprocessing)
        if path.is_dir() and (path / "model.keras").is_file():
            path = path / "model.keras"
        if path.suffix == ".keras":
            folder = path.parent
            model = artifacts.load_keras(path)
            prep = artifacts.read_preprocessing(folder)
            fields = {k: v for k, v in prep.items() if k in ImagePreprocessing.__dataclass_fields__}
            return cls(model, artifacts.read_labels(folder), ImagePreprocessing(**fields))
        if not path.exists():
            names = ", ".join(NAMED_MODELS.names())
            raise DataError(source, f"no such model file or folder; give a run folder, a .keras file or one of: {names}")
        raise DataError(source, "not a dlpipe model: expected a run folder with model.keras, or a .keras file")

    def predict_files(self, paths: Sequence[str], top_k: int = 5, batch_size: int = 32) -> list[Prediction]:
        """Predictions in input order; unreadable files get an error entry instead of stopping the job."""
        results: list[Prediction] = []
        readable: list[str] = []
        for path in paths:
            reason, _ = check_image_file(path, verify=True)
            results.append(Prediction(path, error=reason))
            if not reason:
                readable.append(path)
        if readable:
            prep = self.preprocessing
            ds = tf.data.Dataset.from_tensor_slices(readable).map(lambda p: load_image(p, prep)).batch(batch_size)
            probabilities = self.model.predict(ds, verbose=0)
            k = min(top_k, len(self.class_names))
            ranked = np.argsort(-probabilities, axis=1)[:, :k]
            by_path = {
                path: [(self.class_names[i], float(row[i])) for i in order]
                for path, row, order in zip(readable, probabilities, ranked)
            }
            for result in results:
                if result.error is None:
                    result.top = by_path[result.path]
        return results
