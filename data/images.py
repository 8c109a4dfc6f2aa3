"""Find the images of a class-per-folder dataset and set aside the unusable ones.

A bad file never crashes a run: each is listed with its reason in the run
report. Only folder-level problems (missing folder, fewer than two usable
classes) are errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dlpipe.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# images larger than this are refused before decoding: a 1.6 MB PNG can hold 20000x20000 pixels (1.6 GB decoded)
DEFAULT_MAX_PIXELS = 50_000_000

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


def display_name(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and written as UTF-8: undecodable bytes become \\xNN escapes."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def tf_path(path: str | os.PathLike) -> bytes:
    """A path as the bytes TensorFlow ops take: any file name works, valid UTF-8 or not."""
    return os.fsencode(path)


def too_many_pixels(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why an image is refused before decoding (its header says it is over `max_pixels`), or None.

    Pillow reads only the header here (`Image.open` is lazy), so checking costs no decoding.
    """
    import io
    import warnings

    from PIL import Image

    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    except OSError:  # missing or unreadable: the decoder's error row says so
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return f"image is far over the {max_pixels:,}-pixel limit; resize it before use"
    except Exception:  # noqa: BLE001 - unreadable headers are for the decoder to report
        return None
    finally:
        handle.close()
    if width * height > max_pixels:
        return (f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,}; "
                "resize it (or raise max_pixels)")
    return None


def check_image_file(path: str, verify: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str | None, str | None]:
    """(skip reason, note) for one file; both None for a clean file. Too large images are refused before decoding."""
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
    oversized = too_many_pixels(path, max_pixels)
    if oversized:
        return oversized, None
    note = None
    expected = _EXTENSION_FORMAT.get(Path(path).suffix.lower())
    if expected and expected != actual:
        note = f"{actual} data with {Path(path).suffix} name, decoded as {actual}" + (
            " (first frame)" if actual == "GIF" else ""
        )
    if verify:
        import tensorflow as tf  # only here: reading headers and listing folders needs none

        from dlpipe.data.preprocess import decode_image

        try:  # upright=False: the EXIF read never fails (a bad tag reads as 1), and run eagerly it cost 8 ms a photo
            decode_image(tf.io.read_file(tf_path(path)), upright=False).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.UnknownError) as error:
            message = str(getattr(error, "message", error)).strip().splitlines()[0]
            return f"cannot be decoded as {actual} ({message}); delete or re-save it", None
    return None, note


def scan_image_folder(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    verify: bool = True,
    max_per_class: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageFolder:
    """Index `root/<class>/<image>` (recursively below each class folder).

    Raises DataError when the folder is missing, has fewer than two classes
    with usable images or a class folder whose name cannot be a class name
    (`dlpipe.data.class_names`); empty class folders are left out with a note.
    """
    from dlpipe.data.class_names import check_class_folders

    root = Path(root)
    if not root.exists():
        raise DataError(str(root), "folder does not exist; pass --data DIR with one sub-folder of images per class")
    if not root.is_dir():
        raise DataError(str(root), "is a file, not a folder; pass --data DIR with one sub-folder of images per class")
    check_class_folders(root)
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
            reason, note = check_image_file(path, verify, max_pixels)
            if reason:
                folder.skipped.append(FileIssue(display_name(path), reason))
                continue
            if note:
                folder.notes.append(FileIssue(display_name(path), note))
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
