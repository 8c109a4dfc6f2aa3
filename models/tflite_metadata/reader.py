"""Reading standard metadata back: as plain data, its associated files, its labels."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from dlpipe.models.archive_limits import checked_zip
from dlpipe.models.tflite_metadata.flatbuffer_files import metadata_buffer, model_bytes
from dlpipe.models.tflite_metadata.schema import METADATA_NAME, metadata_schema

from dlpipe.errors import DlpipeError


def read_metadata(model: str | Path | bytes) -> dict[str, Any] | None:
    """The standard metadata of a .tflite file as plain data (enums by name), or None when it has none.

    Keys follow the schema's field names (`subgraphMetadata`, `inputTensorMetadata`,
    `processUnits`, `associatedFiles`, ...); unset fields are left out.
    """
    schema = metadata_schema()
    buffer = metadata_buffer(model_bytes(model), METADATA_NAME)
    if buffer is None:
        return None
    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
        raise DlpipeError(f"TFLite metadata: the {METADATA_NAME} buffer is not a ModelMetadata flatbuffer")
    return plain(schema.ModelMetadataT.InitFromPackedBuf(buffer, 0), schema)


def associated_files(model: str | Path | bytes) -> dict[str, bytes]:
    """Every file packed onto the end of a .tflite file (name -> bytes); {} when none. The zip is checked
    against the archive limits (models.archive_limits) before any file is read."""
    data = model_bytes(model)
    try:
        with checked_zip(io.BytesIO(data), model if isinstance(model, (str, Path)) else "<.tflite bytes>") as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except zipfile.BadZipFile:
        return {}


def read_labels(model: str | Path | bytes) -> list[str] | None:
    """The class names of the first score output's TENSOR_AXIS_LABELS file, or None without one."""
    metadata = read_metadata(model)
    if not metadata:
        return None
    outputs = metadata["subgraphMetadata"][0].get("outputTensorMetadata", [])
    for file in outputs[0].get("associatedFiles", []) if outputs else []:
        if file.get("type") == "TENSOR_AXIS_LABELS":
            return associated_files(model)[file["name"]].decode("utf-8").splitlines()
    return None


def dumps(model: str | Path | bytes) -> str:
    """The standard metadata as indented JSON (for debugging)."""
    return json.dumps(read_metadata(model), indent=2, ensure_ascii=False)


def plain(value: Any, schema: Any, field: str = "") -> Any:
    """A generated `...T` object as dicts and lists, enum fields by name, unset fields dropped."""
    enums = {"optionsType": schema.ProcessUnitOptions, "contentPropertiesType": schema.ContentProperties,
             "colorSpace": schema.ColorSpaceType, "type": schema.AssociatedFileType}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [plain(item, schema, field) for item in list(value)]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "__dict__"):
        return {key: plain(item, schema, key) for key, item in vars(value).items() if item is not None}
    if field in enums and isinstance(value, int):
        names = {number: key for key, number in vars(enums[field]).items() if not key.startswith("_")}
        return names.get(value, value)
    return value.item() if hasattr(value, "item") else value


