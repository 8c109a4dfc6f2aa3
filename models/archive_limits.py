"""Limits every zip archive dlpipe opens (.keras files, a .tflite's associated files) is held to before any
member is read.

Why: a .keras file is a zip, and its header says how large each member inflates. A 0.9 MB model.keras
whose member inflates to 4 GiB took `dlpipe predict` to 6.2 GB of memory (Keras' own guard starts
above 4 GiB), and `dlpipe serve` reloaded it on every poll. Reading only the central directory costs
nothing, and Python's zipfile never inflates a member past the size declared there, so checking the
declared sizes bounds the memory. Keras stores .keras members uncompressed and DEFLATE tops out near
1:1000, so a genuine archive is far below the ratio bound.

Limits (a function argument wins over the environment variable, which wins over the default):
  DLPIPE_MAX_ARCHIVE_BYTES   absolute cap on the inflated total (default 4 GiB)
  DLPIPE_MAX_ARCHIVE_RATIO   inflated total over the archive's own size (default 100; a floor of 16 MiB
                             lets a tiny archive hold small compressible files)
  DLPIPE_MAX_ARCHIVE_MEMBERS how many members (default 10,000)
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from dlpipe.errors import DataError

DEFAULT_MAX_BYTES = 4 << 30
DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_MEMBERS = 10_000
RATIO_FLOOR_BYTES = 16 << 20  # an archive of any size may inflate to this much
FIX = "if you trust its source, raise the limit with DLPIPE_MAX_ARCHIVE_BYTES / DLPIPE_MAX_ARCHIVE_RATIO; else export it again"


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO
    max_members: int = DEFAULT_MAX_MEMBERS

    @classmethod
    def from_env(cls, max_bytes: int | None = None, max_ratio: float | None = None,
                 max_members: int | None = None) -> ArchiveLimits:
        """The limits in force: arguments given, else the environment, else the defaults."""
        return cls(max_bytes if max_bytes is not None else int(_env("DLPIPE_MAX_ARCHIVE_BYTES", DEFAULT_MAX_BYTES)),
                   max_ratio if max_ratio is not None else _env("DLPIPE_MAX_ARCHIVE_RATIO", DEFAULT_MAX_RATIO),
                   max_members if max_members is not None else int(_env("DLPIPE_MAX_ARCHIVE_MEMBERS",
                                                                        DEFAULT_MAX_MEMBERS)))

    def allowed_bytes(self, archive_size: int) -> int:
        """How many inflated bytes an archive of `archive_size` bytes may hold."""
        return int(min(self.max_bytes, max(RATIO_FLOOR_BYTES, self.max_ratio * archive_size)))


def _env(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"${name}", f"'{value[:40]}' is not a number; set it to a positive number or unset it") from None
    if number <= 0:
        raise DataError(f"${name}", f"{value[:40]} is not positive; set it to a positive number or unset it")
    return number


def check_archive(archive: zipfile.ZipFile, name: str | Path, archive_size: int,
                  limits: ArchiveLimits | None = None) -> None:
    """Raise DataError (naming `name` and the fix) unless every member's path, count and declared size is in bounds.

    Reads only the central directory: no member is inflated.
    """
    limits = limits or ArchiveLimits.from_env()
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise DataError(str(name), f"archive holds {len(members):,} members, over the limit of "
                                   f"{limits.max_members:,} (DLPIPE_MAX_ARCHIVE_MEMBERS); not a model dlpipe wrote")
    allowed = limits.allowed_bytes(archive_size)
    total = 0
    for member in members:
        _check_member_path(member.filename, name)
        total += member.file_size
        if member.file_size > allowed or total > allowed:
            what, size = ((f"member '{_shown(member.filename)}' inflates to", member.file_size)
                          if member.file_size > allowed else ("its members inflate to", total))
            raise DataError(str(name), f"archive of {archive_size:,} bytes: {what} {size:,} bytes, over the "
                                       f"limit of {allowed:,} (a decompression bomb?); {FIX}")


def _check_member_path(member: str, name: str | Path) -> None:
    path = member.replace("\\", "/")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or ".." in parts or "\x00" in path:
        raise DataError(str(name), f"archive member path '{_shown(member)}' points outside the archive "
                                   f"(absolute or with '..'); not a model dlpipe wrote, export it again")


def _shown(text: str) -> str:
    return repr(text[:80])[1:-1]


def checked_zip(source: str | Path | IO[bytes], name: str | Path | None = None,
                limits: ArchiveLimits | None = None) -> zipfile.ZipFile:
    """A ZipFile opened for reading after `check_archive` passed; the caller closes it (`with checked_zip(...)`).

    `source` is a path or a seekable binary file (e.g. io.BytesIO); `name` names it in errors.
    """
    limits = limits or ArchiveLimits.from_env()
    if isinstance(source, (str, Path)):
        name, size = name or source, Path(source).stat().st_size
    else:
        name, size = name or "<archive>", source.seek(0, os.SEEK_END)
        source.seek(0)
    _check_member_count(source, name, limits)
    archive = zipfile.ZipFile(source)
    try:
        check_archive(archive, name, size, limits)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_member_count(source: str | Path | IO[bytes], name: str | Path, limits: ArchiveLimits) -> None:
    """The member count from the end record, before zipfile parses (and holds) the whole central directory."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:  # a future Python without it: check_archive counts after parsing
        return
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            record = end_record(handle)
    else:
        record = end_record(source)
        source.seek(0)
    count = record[zipfile._ECD_ENTRIES_TOTAL] if record else 0
    if count > limits.max_members:
        raise DataError(str(name), f"archive holds {count:,} members, over the limit of {limits.max_members:,} "
                                   f"(DLPIPE_MAX_ARCHIVE_MEMBERS); not a model dlpipe wrote")


def check_archive_file(path: str | Path, limits: ArchiveLimits | None = None) -> None:
    """Check the zip at `path` (e.g. a .keras file) before a library opens it; a file that is no zip is
    refused with a one-line error too."""
    try:
        checked_zip(path, path, limits).close()
    except zipfile.BadZipFile as error:
        raise DataError(str(path), f"not a valid .keras (zip) file ({error}); export the model again") from None
