"""Write and read trained models as files, atomically, with their labels.

Every artifact folder gets `labels.txt` (one class per line, in output order)
and `preprocessing.json` (what the input pipeline did before the model), so a
model file is never separated from what its outputs mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras

from dlpipe import atomic
from dlpipe.errors import DataError

# importing the modules registers the custom layers, so .keras files of every kind reload
from dlpipe.models import bert_layers as _bert_layers  # noqa: F401
from dlpipe.models import layers as _layers  # noqa: F401
from dlpipe.models import text_layers as _text_layers  # noqa: F401

LABELS_FILE = "labels.txt"
PREPROCESSING_FILE = "preprocessing.json"


def write_labels(folder: str | Path, class_names: list[str]) -> None:
    atomic.write_text(Path(folder) / LABELS_FILE, "".join(f"{name}\n" for name in class_names))


def read_labels(folder: str | Path) -> list[str]:
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise DataError(str(path), "labels file missing; re-export the model with dlpipe")
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_preprocessing(folder: str | Path, preprocessing: dict[str, Any]) -> None:
    atomic.write_json(Path(folder) / PREPROCESSING_FILE, preprocessing)


def read_preprocessing(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / PREPROCESSING_FILE
    if not path.is_file():
        raise DataError(str(path), "preprocessing description missing; re-export the model with dlpipe")
    return json.loads(path.read_text(encoding="utf-8"))


def copy_beside(source: str | Path, folder: str | Path) -> Path:
    """Copy a file the model needs (e.g. a tokenizer vocabulary) into an artifact folder, atomically."""
    source, target = Path(source), Path(folder) / Path(source).name
    with atomic.replacing_file(target) as tmp:
        tmp.write_bytes(source.read_bytes())
    return target


def export_archive(model: keras.Model) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` tracking `model` that writes each weight once.

    Keras 3's `track()` records the Keras Variable wrappers while `write_out()` also
    records the raw tf.Variables its endpoints capture; TensorFlow dedupes by object,
    so every weight was written twice: twice the disk and twice the memory wherever
    the SavedModel is loaded (keras-team/keras#23553, open). Tracking the raw
    tf.Variables makes both lists hold the same objects.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    tracked = archive._tf_trackable  # the lists `track()` fills; Keras offers no public handle on them
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(tracked, name, [getattr(variable, "value", variable) for variable in getattr(tracked, name)])
    return archive


def save_keras(model: keras.Model, path: str | Path) -> Path:
    """Save a `.keras` file; a crash mid-write leaves any previous file intact."""
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        model.save(tmp)
    return path


def load_keras(path: str | Path) -> keras.Model:
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "model file does not exist")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError) as error:
        raise DataError(str(path), f"cannot load this .keras file ({error})") from None
