"""A .tflite file read defensively: a truncated, damaged or random file is one error naming it.

The flatbuffer reader follows offsets stored in the file, so a file cut short (a broken copy or
download) or random bytes named .tflite failed with a struct error about offsets
("unpack_from requires a buffer of at least 1168428 bytes"), printed as `internal error`.
"""

from __future__ import annotations

import struct
from pathlib import Path

from dlpipe.errors import DataError

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier every .tflite carries at bytes 4-8


def not_a_tflite(path: str | Path, reason: str) -> DataError:
    """The one-line error for a .tflite that is truncated, damaged or something else under that name."""
    return DataError(str(path), f"is not a usable TFLite model ({reason}); export it again with dlpipe export, "
                                "or copy the whole file (a download or copy may have been cut short)")


def metadata_buffers(path: str | Path) -> dict[str, bytes]:
    """Every named metadata buffer of the .tflite at `path` (name -> bytes), or `not_a_tflite`."""
    from dlpipe.models.tflite_metadata.flatbuffer_files import named_buffers

    data = Path(path).read_bytes()
    if data[4:8] != TFLITE_IDENTIFIER:
        raise not_a_tflite(path, f"it lacks the {TFLITE_IDENTIFIER.decode()} identifier of a TFLite flatbuffer")
    try:
        return named_buffers(data)
    except struct.error:
        raise not_a_tflite(path, f"its {len(data):,} bytes end before the data its own offsets point to") from None
    except (IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as error:
        detail = str(error).splitlines()[0][:120] if str(error) else "no detail"
        raise not_a_tflite(path, f"its flatbuffer cannot be read: {type(error).__name__}, {detail}") from None
