"""Lines of a text file in the encoding it says it has: a byte-order mark names UTF-8, UTF-16 or UTF-32; else UTF-8.

Read as UTF-8, a UTF-16 file is mostly valid UTF-8 with a NUL byte beside every letter, so without this its
labels became garbage classes and a run trained on them and exited 0. A file with a BOM is decoded whole
and must decode cleanly; a file without one is UTF-8 line by line (a stray bad line is the caller's to skip),
and NUL bytes in it (UTF-16/32 without a mark, or a binary file) refuse it, naming file:line.
No TensorFlow here: this runs before it is imported.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from dlpipe.errors import DataError

# longest first: the UTF-32-LE mark begins with the UTF-16-LE one
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what bytes.splitlines() splits on; U+2028 and friends stay in a line
SAVE_AS = "save it as UTF-8 (or UTF-16/UTF-32 with a byte-order mark)"


def detect_encoding(data: bytes) -> tuple[str, int]:
    """(codec, length of the byte-order mark) of a file's bytes; ("utf-8", 0) without a mark."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return "utf-8", 0


def decoded_lines(path: str | Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, None) per line of `path`, or (number, None, reason) for a UTF-8 line that cannot
    be decoded; a file with a byte-order mark that does not decode, or NUL bytes in a file without one, is a
    DataError naming file:line."""
    path = Path(path)
    data = path.read_bytes()
    codec, skip = detect_encoding(data)
    if skip and codec != "utf-8":
        yield from _whole_file_lines(path, data[skip:], codec)
        return
    data = data[skip:]
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{path}:{line}", "holds NUL bytes: UTF-16 or UTF-32 text without a byte-order mark, "
                                          f"or not text at all; {SAVE_AS}")
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as error:
            yield number, None, f"invalid UTF-8 byte at column {error.start + 1}"


def _whole_file_lines(path: Path, data: bytes, codec: str) -> Iterator[tuple[int, str, None]]:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        line = len(_LINE_BREAK.findall(data[: error.start].decode(codec, "replace"))) + 1
        raise DataError(f"{path}:{line}", f"starts with a {codec.upper()} byte-order mark but is not valid "
                                          f"{codec.upper()} (byte {error.start}); {SAVE_AS}") from None
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        yield number, line, None

