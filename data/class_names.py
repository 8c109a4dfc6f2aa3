"""Class names checked where they are read (a folder's sub-folders, a label column, a CSV's or COCO file's labels).

A class name travels into labels.txt (one name a line), the TFLite metadata, report.json and file names; a
name holding a newline trained for minutes and then failed at export. Control characters, line breaks,
undecodable bytes, path separators and overlong names are refused at load with one line naming where the
name came from, before any training. No TensorFlow here: this runs before it is imported.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from dlpipe.errors import DataError

MAX_CLASS_NAME_CHARS = 128
# control characters, line and paragraph separators, undecodable bytes (surrogate escapes), U+FFFD, a stray BOM
_BAD_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}
_BAD_CHARACTERS = {"\ufffd", "\ufeff"}


def is_garbled(name: str) -> bool:
    """True when `name` holds a character no label is written with: a control character, a line break,
    an undecodable byte or U+FFFD (what a wrongly decoded file gives)."""
    return any(char in _BAD_CHARACTERS or unicodedata.category(char) in _BAD_CATEGORIES for char in name)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a class name, or None."""
    if is_garbled(name):
        return "holds a control character, line break or undecodable byte"
    if not name.strip():
        return "is empty"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "holds a path separator"
    if len(name) > MAX_CLASS_NAME_CHARS:
        return f"is {len(name)} characters long, over the limit of {MAX_CLASS_NAME_CHARS}"
    return None


def check_class_name(name: str, where: str, what: str = "class name", fix: str = "rename it") -> None:
    """Refuse `name` with a DataError naming `where` (a folder, file:line) when it cannot be a class name."""
    problem = name_problem(name)
    if problem:
        shown = repr(name) if len(name) <= 80 else repr(name[:80]) + "..."
        raise DataError(where, f"{what} {shown} {problem}; {fix}")


def check_class_folders(root: str | os.PathLike) -> None:
    """Check the name of every class sub-folder of `root` (the hidden ones are not classes); a missing root is
    left to the loader, which words that error."""
    root = Path(root)
    if not root.is_dir():
        return
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            check_class_name(entry.name, repr(str(root))[1:-1], "class folder",
                             "rename the folder: one line of text, no '/' or '\\'")
