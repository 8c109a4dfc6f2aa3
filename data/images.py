"""Find the images of a class-per-folder dataset and set aside the unusable ones.

A bad file never crashes a run: each is listed with its reason in the run
report. Only folder-level problems (missing folder, fewer than two usable
classes) are errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from dlpipe.data.preprocess import decode_image
from dlpipe.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")

# magic bytes -> format name; what the decoder really sees, whatever the file is called
IMAGE_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"))
_EXTENSION_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP"}


@dataclass(frozen=True)
class FileIssue:
    """A file that was skipped, or decoded with a remark."""

    path: str
    reason: str


@dataclass
class ImageFolder:
    """The usable images of a dataset folder, and what was left out."""

    root: str
    class_names: list[str]
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: list[FileIssue] = field(default_factory=list)
    notes: list[FileIssue] = field(default_factory=list)

    def class_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.class_names}
        for label in self.labels:
            counts[self.class_names[label]] += 1
        return counts


def sniff_format(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    for signature, name in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def check_image_file(path: str, verify: bool = True) -> tuple[str | None, str | None]:
    """(skip reason, note) for one file; both None for a clean file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as error:
        return f"cannot be read ({error.strerror})", None
    if not head:
        return "empty file", None
    actual = sniff_format(head)
    if actual is None:
        return "not a JPEG, PNG, GIF or BMP image (unknown content); delete or convert it", None
    note = None
    expected = _EXTENSION_FORMAT.get(Path(path).suffix.lower())
    if expected and expected != actual:
        note = f"{actual} data with {Path(path).suffix} name, decoded as {actual}" + (
            " (first frame)" if actual == "GIF" else ""
        )
    if verify:
        try:
            decode_image(tf.io.read_file(path)).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.UnknownError) as error:
            message = str(getattr(error, "message", error)).strip().splitlines()[0]
            return f"cannot be decoded as {actual} ({message}); delete or re-save it", None
    return None, note


def scan_image_folder(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    verify: bool = True,
    max_per_class: int | None = None,
) -> ImageFolder:
    """Index `root/<class>/<image>` (recursively below each class folder).

    Raises DataError when the folder is missing or has fewer than two classes
    with usable images; empty class folders are left out with a note.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(str(root), "folder does not exist; pass --data DIR with one sub-folder of images per class")
    if not root.is_dir():
        raise DataError(str(root), "is a file, not a folder; pass --data DIR with one sub-folder of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    allowed = tuple(ext.lower() for ext in extensions)
    folder = ImageFolder(root=str(root), class_names=[])
    for class_dir in class_dirs:
        files = sorted(
            str(p) for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in allowed
        )
        good: list[str] = []
        for path in files:
            if max_per_class is not None and len(good) >= max_per_class:
                break
            reason, note = check_image_file(path, verify)
            if reason:
                folder.skipped.append(FileIssue(path, reason))
                continue
            if note:
                folder.notes.append(FileIssue(path, note))
            good.append(path)
        if not good:
            folder.notes.append(FileIssue(str(class_dir), "class folder has no usable images; class left out"))
            continue
        label = len(folder.class_names)
        folder.class_names.append(class_dir.name)
        folder.paths.extend(good)
        folder.labels.extend([label] * len(good))
    if len(folder.class_names) < 2:
        found = ", ".join(f"'{name}'" for name in folder.class_names) or "none"
        raise DataError(
            str(root),
            f"needs at least two class sub-folders with images, found {found}; "
            f"put each class's images in its own sub-folder ({', '.join(allowed)})",
        )
    return folder
