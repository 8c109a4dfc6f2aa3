"""The files a user chose to leave out of a run (`load.exclude`): a `dlpipe doctor` CSV or a plain list of paths.

Paths are compared after resolving links and `..`, so a list written from one working folder (the doctor writes
absolute paths) matches the same files however the run names its data folder.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

from dlpipe.errors import DataError


def canonical(path: str | os.PathLike) -> str:
    """One spelling per file: absolute, links and `..` resolved."""
    return os.path.realpath(path)


def read_exclude_list(path: str | os.PathLike) -> set[str]:
    """The canonical paths listed in `path`: the `path` column of a CSV with a header, else one path per line
    (blank lines and lines starting with # are ignored)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(str(path), "exclude list not found; pass load.exclude=FILE, a doctor.csv written by "
                                   "`dlpipe doctor` or a text file with one path per line")
    text = file.read_text(encoding="utf-8", errors="surrogateescape")
    lines = text.splitlines()
    if lines and lines[0].split(",")[0].strip().lower() == "path":
        rows = csv.DictReader(io.StringIO(text))
        entries = [row.get("path") or "" for row in rows]
    else:
        entries = [line for line in lines if not line.lstrip().startswith("#")]
    return {canonical(entry.strip()) for entry in entries if entry.strip()}


def drop_excluded(paths: Sequence[str], labels: Sequence[int], excluded: set[str]) -> tuple[list[str], list[int], int]:
    """(paths, labels) without the excluded files, and how many were dropped."""
    kept = [(p, label) for p, label in zip(paths, labels) if canonical(p) not in excluded]
    return [p for p, _ in kept], [label for _, label in kept], len(paths) - len(kept)
