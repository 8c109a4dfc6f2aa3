"""Failures of the machine rather than of dlpipe (a full disk, a read-only folder), told as cause and remedy.

They reach the CLI as an `OSError` with an errno, or wrapped by a library in its own exception
(TensorFlow's `ResourceExhaustedError: ... No space left on device`, h5py's `errno = 30`), so
both the errno and the operating system's words are read. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import errno
import os
import re

FULL_DISK_CODES = _FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)
_WORDS = {code: os.strerror(code) for code in (*_FULL, *_READ_ONLY, *_DENIED)}  # "No space left on device", ...


def error_code(error: BaseException) -> int | None:
    """The errno behind `error`: its own, or one its message names in the system's words or as `errno = N`."""
    if isinstance(error, OSError) and error.errno in _WORDS:
        return error.errno
    text = str(error)
    for code, words in _WORDS.items():
        if words in text or re.search(rf"errno = {code}\b", text):
            return code
    return None


def path_of(error: BaseException) -> str | None:
    """The file an error names: an OSError's filename, or h5py's `name = '...'`."""
    if isinstance(error, OSError) and error.filename:
        return str(error.filename)
    match = re.search(r"name = '([^']+)'", str(error))
    return match.group(1) if match else None


def explain(error: BaseException, where: str | None = None) -> str | None:
    """One line with the cause and the remedy when `error` is a full disk, a read-only file system or a denied
    write; None otherwise. `where` (the command's --out) names the place when the error does not."""
    code = error_code(error)
    if code is None:
        return None
    place = path_of(error)
    if place is None or _temporary(place):
        place = where or place
    at = f"{place}: " if place else ""
    if code in _FULL:
        return (f"{at}no space left on the device (writing failed: {_WORDS[code]}); free some space or write "
                "to another disk (--out)")
    if code in _READ_ONLY:
        return f"{at}the file system is read-only; write to a writable folder (--out)"
    return f"{at}permission denied; fix its permissions or give another path (--out for what dlpipe writes)"


def _temporary(path: str) -> bool:
    """A name dlpipe.atomic writes before renaming (".NAME.xxxx.tmp", ".partial-NAME"): the user never named it."""
    name = os.path.basename(path.rstrip("/"))
    return name.startswith(".") and (name.endswith(".tmp") or ".partial-" in name)
