"""Classify image files with a trained run, a `.keras` file or a named pretrained model.

Inputs go through `dlpipe.data.preprocess`, the same code that prepared the
training images, so predictions match what evaluation measured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from dlpipe.data.images import check_image_file
from dlpipe.data.preprocess import ImagePreprocessing, load_image
from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.serving.loaded_model import top_labels


def is_text_model(source: str) -> bool:
    """True for a run or export folder whose preprocessing.json says kind: text."""
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    try:
        return artifacts.read_preprocessing(folder).get("kind") == "text"
    except DataError:
        return False


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders searched recursively for images (sorted), .txt files read as lists of paths."""
    from dlpipe.data.images import IMAGE_EXTENSIONS

    paths: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and path.suffix.lower() == ".txt":
            lines = path.read_text(encoding="utf-8").splitlines()
            paths.extend(line.strip().removeprefix("file://") for line in lines if line.strip())
        elif path.is_dir():
            paths.extend(sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.is_file():
            paths.append(str(path))
        else:
            raise DataError(item, "no such file or folder")
    return paths


class RowPredictor(ABC):
    """Shared by image and text predictors: rows come from `classify_rows`, in input order."""

    @abstractmethod
    def classify_rows(self, ids: Sequence[str], top_k: int = 5, batch_size: int = 32) -> Iterator[list[dict[str, Any]]]:
        """Batches of result rows ({"input", "label", "score", "top"} or {"input", "error"}) in input order."""

    def predict_files(self, paths: Sequence[str], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
        """All rows at once (small jobs); see `classify_rows`."""
        return [row for rows in self.classify_rows(paths, top_k, batch_size) for row in rows]

    def _row(self, key: str, probabilities: np.ndarray, top_k: int, **extra: Any) -> dict[str, Any]:
        """One result row: the input's id, any extra fields, the best label and score, and the top k."""
        top = top_labels(probabilities, self.class_names, top_k, digits=6)
        return {"input": key, **extra, **top[0], "top": top}


class ImagePredictor(RowPredictor):
    """An image classifier (a Keras model, or the runtime of an exported file) with its labels and preprocessing."""

    def __init__(self, model: Any, class_names: list[str], preprocessing: ImagePreprocessing):
        self.model = model
        self.class_names = class_names
        self.preprocessing = preprocessing

    @classmethod
    def load(cls, source: str) -> "ImagePredictor":
        """A run folder, a `.keras` file, a SavedModel folder or a `.tflite` file (labels.txt and
        preprocessing.json beside it), or a named model."""
        from dlpipe.models.pretrained import NAMED_MODELS
        from dlpipe.models.runtimes import Runtime, load_runtime

        path = Path(source)
        if not path.exists() and source in NAMED_MODELS:
            named = NAMED_MODELS.get(source)()
            return cls(named.model, named.class_names, named.preprocessing)
        if not path.exists():
            names = ", ".join(NAMED_MODELS.names())
            raise DataError(source, f"no such model file or folder; give a run folder, a .keras file, an exported "
                                    f"SavedModel or .tflite, or one of: {names}")
        runtime: Runtime = load_runtime(path)
        model = getattr(runtime, "model", runtime)  # a Keras model is used as it is (exports, tests reach it)
        return cls(model, runtime.class_names, runtime.preprocessing)

    def predict_pixels(self, pixels: Any) -> np.ndarray:
        """Probabilities for a batch of preprocessed images (N, S, S, 3), pixels in [0, 255]."""
        from dlpipe.models.runtimes import Runtime

        if isinstance(self.model, Runtime):
            return self.model.predict(np.asarray(pixels))
        return np.asarray(self.model.predict_on_batch(pixels))

    def classify_rows(self, paths: Sequence[str], top_k: int = 5, batch_size: int = 32) -> Iterator[list[dict[str, Any]]]:
        """Row batches in input order: decoding runs in parallel; unreadable files become error rows."""
        prep = self.preprocessing
        ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), list(paths) or [""]))
        if not paths:
            return
        ds = ds.map(lambda i, p: (i, load_image(p, prep)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.ignore_errors().batch(batch_size).prefetch(2)
        expected = 0
        for indices, images in ds:
            probabilities = self.predict_pixels(images)
            rows: list[dict[str, Any]] = []
            for index, row in zip(indices.numpy().tolist(), probabilities):
                rows.extend(self._error_row(paths[i]) for i in range(expected, index))
                rows.append(self._row(paths[index], row, top_k))
                expected = index + 1
            yield rows
        if expected < len(paths):
            yield [self._error_row(path) for path in paths[expected:]]

    @staticmethod
    def _error_row(path: str) -> dict[str, Any]:
        reason, _ = check_image_file(path, verify=True)
        return {"input": path, "error": reason or "could not be decoded"}


class TextPredictor(RowPredictor):
    """A text model (run folder, .keras, SavedModel or .tflite) applied to lines of text files, with per-line errors."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.class_names = runtime.class_names
        self.texts: dict[str, tuple[str | None, str | None]] = {}

    @classmethod
    def load(cls, source: str) -> "TextPredictor":
        from dlpipe.models.runtimes import load_runtime

        return cls(load_runtime(source))

    def add_inputs(self, files: Sequence[str]) -> list[str]:
        """Read the text files; returns the ids ("file:line") to classify."""
        from dlpipe.data.text import read_unlabelled_texts

        ids = []
        for file in files:
            for key, text, error in read_unlabelled_texts(file):
                self.texts[key] = (text, error)
                ids.append(key)
        return ids

    def classify_rows(self, ids: Sequence[str], top_k: int = 5, batch_size: int = 32) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            good = [key for key in chunk if self.texts[key][1] is None]
            probabilities = self.runtime.predict([self.texts[key][0] for key in good]) if good else []
            by_key = dict(zip(good, probabilities))
            rows = []
            for key in chunk:
                text, error = self.texts[key]
                if error:
                    rows.append({"input": key, "error": error})
                else:
                    rows.append(self._row(key, by_key[key], top_k, text=text))
            yield rows
