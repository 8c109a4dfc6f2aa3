"""Bytes-level work on a .tflite: its named metadata buffers, and the zip of associated files on its end."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Mapping

import flatbuffers
from dlpipe.models.tflite_metadata.schema import MODEL_IDENTIFIER, text_of


def with_buffer(flatbuffer: bytes, name: str, data: bytes) -> bytes:
    """The model flatbuffer with metadata buffer `name` set to `data` (added, or replaced in place)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    entries = list(model.metadata or [])
    for entry in entries:
        if text_of(entry.name) == name:
            model.buffers[entry.buffer] = buffer
            break
    else:
        model.buffers.append(buffer)
        entry = tfl.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        entries.append(entry)
    model.metadata = entries
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), MODEL_IDENTIFIER)
    return bytes(builder.Output())


def zip_onto(model: bytes, files: Mapping[str, bytes]) -> bytes:
    """Append the files as a zip archive, stored uncompressed: MediaPipe reads them in place."""
    out = io.BytesIO()
    out.write(model)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for file_name, data in files.items():
            archive.writestr(zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def model_bytes(model: str | Path | bytes) -> bytes:
    return bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else Path(model).read_bytes()


def metadata_buffer(data: bytes, name: str) -> bytearray | None:
    """The bytes of the model's metadata buffer `name` (inline, or at an offset for >2 GB models)."""
    found = named_buffers(data, only=name)
    return bytearray(found[name]) if name in found else None


def named_buffers(data: bytes, only: str | None = None) -> dict[str, bytes]:
    """Every named metadata buffer of a model flatbuffer (name -> bytes), or just `only`, read in place.

    LiteRT's copy of the TFLite schema reads it: a .tflite's side files are found without importing TensorFlow
    and without unpacking the model's weights into Python objects.
    """
    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.Model.GetRootAs(bytearray(data), 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = text_of(entry.Name())
        if only is not None and name != only:
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.Offset() > 1:
            out[name] = bytes(data[buffer.Offset():buffer.Offset() + buffer.Size()])
        else:
            out[name] = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    return out
