"""The public builder of standard TFLite Metadata: the pieces every writer assembles, and `populate`.

A writer (one per task kind: image_classifier, text_classifier, object_detector) checks the model's tensors
(`checks`), describes its inputs and outputs with these pieces, and calls `populate`, which stores the
ModelMetadata flatbuffer in the model's "TFLITE_METADATA" buffer and zips the associated files onto it, as
tflite-support's MetadataPopulator does.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flatbuffers
from dlpipe.models.tflite_metadata.flatbuffer_files import with_buffer, zip_onto
from dlpipe.models.tflite_metadata.schema import (
    LABELS_FILE,
    METADATA_IDENTIFIER,
    METADATA_NAME,
    VOCAB_FILE,
    metadata_schema,
    text_of,
)


def image_input_metadata(description: str, mean: Sequence[float], std: Sequence[float], uint8: bool = False) -> Any:
    """The metadata of an RGB image input: colour space, NormalizationOptions (mean, std) and its value range."""
    schema = metadata_schema()
    tensor = tensor_metadata("image", description, schema.ContentProperties.ImageProperties)
    tensor.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    unit.options = schema.NormalizationOptionsT()
    unit.options.mean, unit.options.std = mean, std
    tensor.processUnits = [unit]
    # tflite-support's writer: a uint8 input's range is the bytes; a float one's is the normalised pixel range
    tensor.stats = value_range([0.0], [255.0]) if uint8 else value_range(
        [(0.0 - m) / s for m, s in zip(mean, std)], [(255.0 - m) / s for m, s in zip(mean, std)])
    return tensor


def model_metadata(subgraph: Any, name: str, description: str, version: str | None, author: str | None,
                    license: str | None) -> Any:
    schema = metadata_schema()
    metadata = schema.ModelMetadataT()
    metadata.name, metadata.description, metadata.version = name, description, version
    metadata.author, metadata.license = author, license
    metadata.subgraphMetadata = [subgraph]
    return metadata


def tensor_metadata(name: str, description: str, content_type: int | None = None) -> Any:
    """A TensorMetadata with feature (or image) content, as tflite-support's TensorMd creates it."""
    schema = metadata_schema()
    content_type = schema.ContentProperties.FeatureProperties if content_type is None else content_type
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = content_type
    tensor.content.contentProperties = (schema.ImagePropertiesT() if content_type == schema.ContentProperties.ImageProperties
                                        else schema.FeaturePropertiesT())
    return tensor


def score_metadata(scores: dict[str, Any], score_threshold: float | None = None) -> Any:
    schema = metadata_schema()
    tensor = tensor_metadata("probability", "Probabilities of the labels respectively.")
    tensor.stats = value_range([0.0], [255.0]) if scores["type"] == "UINT8" else value_range([0.0], [1.0])
    labels = schema.AssociatedFileT()
    labels.name, labels.description = LABELS_FILE, "Labels for categories that the model can recognize."
    labels.type = schema.AssociatedFileType.TENSOR_AXIS_LABELS
    tensor.associatedFiles = [labels]
    if score_threshold is not None:
        unit = schema.ProcessUnitT()
        unit.optionsType = schema.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = schema.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = float(score_threshold)
        tensor.processUnits = [unit]
    return tensor


def vocab_file_metadata() -> Any:
    schema = metadata_schema()
    vocab = schema.AssociatedFileT()
    vocab.name, vocab.description = VOCAB_FILE, "Vocabulary file to convert natural language words to embedding vectors."
    vocab.type = schema.AssociatedFileType.VOCABULARY
    return vocab


def value_range(low: list[float], high: list[float]) -> Any:
    stats = metadata_schema().StatsT()
    stats.min, stats.max = low, high
    return stats


def populate(flatbuffer: bytes, metadata: Any, files: Mapping[str, bytes]) -> bytes:
    """Record the extra files, stamp the parser version, store the metadata and zip the files on."""
    recorded = _recorded_files(metadata)
    for file_name in files:
        if "/" in file_name or not file_name:
            raise ValueError(f"associated file names are plain names. Received: {file_name!r}")
    extra = [file_name for file_name in files if file_name not in recorded]
    if extra:
        metadata.associatedFiles = [_extra_file(file_name) for file_name in extra]
    missing = sorted(set(_recorded_files(metadata)) - set(files))
    if missing:
        raise ValueError(f"files recorded in the metadata but not given: {missing}")
    metadata.minParserVersion = _min_parser_version(metadata)
    builder = flatbuffers.Builder(1024)
    builder.Finish(metadata.Pack(builder), METADATA_IDENTIFIER)
    model = with_buffer(flatbuffer, METADATA_NAME, bytes(builder.Output()))
    return zip_onto(model, files)


def _extra_file(file_name: str) -> Any:
    schema = metadata_schema()
    file = schema.AssociatedFileT()
    file.name, file.description, file.type = file_name, "Packed by dlpipe.", schema.AssociatedFileType.UNKNOWN
    return file


def _recorded_files(metadata: Any) -> list[str]:
    """Names of every AssociatedFile in the metadata (model, tensors, process units), like MetadataPopulator."""
    names: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif hasattr(value, "__dict__"):
            if type(value).__name__ == "AssociatedFileT":
                names.append(text_of(value.name))
            for item in vars(value).values():
                visit(item)

    visit(metadata)
    return names


def _min_parser_version(metadata: Any) -> str:
    """The oldest metadata parser that understands every field used (the schema's History table)."""
    schema = metadata_schema()
    version = (1, 0, 0)
    files = []

    def visit(value: Any) -> None:
        nonlocal version
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif hasattr(value, "__dict__"):
            kind = type(value).__name__
            if kind == "AssociatedFileT":
                files.append(value)
            elif kind in ("BertTokenizerOptionsT", "SentencePieceTokenizerOptionsT"):
                version = max(version, (1, 1, 0))
            elif kind == "RegexTokenizerOptionsT":
                version = max(version, (1, 2, 1))
            for item in vars(value).values():
                visit(item)

    visit(metadata)
    if any(file.type == schema.AssociatedFileType.VOCABULARY for file in files):
        version = max(version, (1, 0, 1))
    subgraph = metadata.subgraphMetadata[0]
    if subgraph.inputProcessUnits or subgraph.outputProcessUnits:
        version = max(version, (1, 1, 0))
    return ".".join(str(part) for part in version)


def normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) not in (1, 3) or len(std) != len(mean):
        raise ValueError(f"`mean` and `std` take one value or one per channel, the same count. "
                         f"Received: mean={mean}, std={std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"`std` must be positive. Received: std={std}")
    return mean, std


def lines_file(items: Sequence[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode("utf-8")
