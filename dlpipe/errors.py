"""Errors a user can act on.

Every error dlpipe raises for bad input is a `DlpipeError`: the CLI prints its
message on one line (no traceback), so each message names the file or key and
says how to fix it. The attributes let code read the same facts.
"""

from __future__ import annotations

import reprlib

# the longest message dlpipe prints: a 130 KB --set value or a 4 GB alias expansion is cut, not echoed whole
MAX_MESSAGE_CHARS = 600
_BRIEF = reprlib.Repr()
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlist, _BRIEF.maxdict, _BRIEF.maxlevel = 120, 120, 6, 6, 3


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def brief(value: object) -> str:
    """A repr of `value` for a message, bounded however large or deep the value is (reprlib: it never builds
    the whole repr)."""
    return clip(_BRIEF.repr(value), 200)


class DlpipeError(Exception):
    """Base class: a problem the user can fix; shown as one line, never longer than MAX_MESSAGE_CHARS."""

    def __str__(self) -> str:
        return clip(super().__str__())


class ConfigError(DlpipeError):
    """A config key is unknown, has the wrong type or an invalid value."""

    def __init__(self, key: str, reason: str, source: str | None = None):
        self.key = key
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {reason}")


class DataError(DlpipeError):
    """Input data (a file or folder) cannot be used."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class WeightsUnavailableError(DlpipeError):
    """Pretrained weights are neither cached nor downloadable here."""

    def __init__(self, backbone: str, how_to_fix: str):
        self.backbone = backbone
        self.how_to_fix = how_to_fix
        super().__init__(f"weights for backbone '{backbone}' are not available offline: {how_to_fix}")


class RunStateError(DlpipeError):
    """The output folder's state does not allow the requested action."""
