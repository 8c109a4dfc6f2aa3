"""Hostile .keras files for the archive-limit tests: a zip bomb, a member path that climbs out, and a tiny
genuine model to compare with. Built in the test, in well under a second each."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path


def write_tiny_keras(folder: Path) -> Path:
    """A tiny untrained 16 px image classifier as model.keras with its side files; returns the file."""
    import keras

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import artifacts

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    artifacts.write_side_files(folder, artifacts.Bundle("image", ["blue", "red"], ImagePreprocessing(image_size=16)))
    return artifacts.save_keras(model, folder / artifacts.KERAS_FILE)


def write_keras_bomb(path: Path, inflated_bytes: int, member: str = "config.json") -> Path:
    """A .keras-shaped zip whose `member` is `inflated_bytes` of spaces, deflated (about 1:1000 on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.0.0", "date_saved": "2026-01-01@00:00:00"}')
        with archive.open(member, "w", force_zip64=True) as handle:
            left = inflated_bytes
            while left > 0:
                handle.write(chunk[:left])
                left -= len(chunk)
        archive.writestr("model.weights.h5", b"")
    return path


def with_extra_member(source: Path, target: Path, member: str) -> Path:
    """A copy of the .keras file `source` with one more member named `member` (e.g. '../evil.py')."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(zipfile.ZipInfo(member), b"print('escaped')\n")
    return target
