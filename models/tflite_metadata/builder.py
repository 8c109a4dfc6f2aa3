"""The public builder of standard TFLite Metadata: the pieces every writer assembles, and `populate`.

A writer (one per task kind: image_classifier, text_classifier, object_detector) checks the model's tensors
(`checks`) and builds only from these functions, never from the generated schema classes:
- inputs: `image_input_metadata` (RGB, NormalizationOptions from `normalization`), `tensor_metadata` (a plain
  feature tensor), and the tokenizer process units `bert_tokenizer_unit`, `regex_tokenizer_unit`;
- outputs: `score_metadata` (labels along the class axis, optional global score threshold), `box_metadata`,
  `labels_file`, `content_dimension`;
- the whole: `subgraph_metadata`, `model_metadata` (the model card), `packed_files` (labels.txt, vocab.txt and
  extra files), and `populate`, which stores the ModelMetadata flatbuffer in the model's "TFLITE_METADATA"
  buffer and zips the associated files onto it, as tflite-support's MetadataPopulator does.
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
    tensor.stats = _value_range([0.0], [255.0]) if uint8 else _value_range(
        [(0.0 - m) / s for m, s in zip(mean, std)], [(255.0 - m) / s for m, s in zip(mean, std)])
    return tensor



def normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """`mean` and `std` as float lists after checking them: one value or one per channel, std positive."""
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) not in (1, 3) or len(std) != len(mean):
        raise ValueError(f"`mean` and `std` take one value or one per channel, the same count. "
                         f"Received: mean={mean}, std={std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"`std` must be positive. Received: std={std}")
    return mean, std



def tensor_metadata(name: str, description: str, content_type: int | None = None) -> Any:
    """A TensorMetadata with feature (or image) content, as tflite-support's TensorMd creates it."""
    schema = metadata_schema()
    content_type = schema.ContentProperties.FeatureProperties if content_type is None else content_type
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = content_type
    image = content_type == schema.ContentProperties.ImageProperties
    tensor.content.contentProperties = schema.ImagePropertiesT() if image else schema.FeaturePropertiesT()
    return tensor



def score_metadata(scores: dict[str, Any], score_threshold: float | None = None) -> Any:
    """The score output of a classifier: its value range, the labels file along its class axis, an optional
    global score threshold (ScoreThresholdingOptions) that MediaPipe applies by default."""
    schema = metadata_schema()
    tensor = tensor_metadata("probability", "Probabilities of the labels respectively.")
    tensor.stats = _value_range([0.0], [255.0]) if scores["type"] == "UINT8" else _value_range([0.0], [1.0])
    tensor.associatedFiles = [labels_file("axis")]
    if score_threshold is not None:
        unit = schema.ProcessUnitT()
        unit.optionsType = schema.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = schema.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = float(score_threshold)
        tensor.processUnits = [unit]
    return tensor



def labels_file(attached_to: str = "axis") -> Any:
    """labels.txt as an AssociatedFile: along a score tensor's class axis ("axis": TENSOR_AXIS_LABELS) or naming
    the class ids a tensor holds ("value": TENSOR_VALUE_LABELS, an object detector's categories)."""
    schema = metadata_schema()
    kinds = {"axis": schema.AssociatedFileType.TENSOR_AXIS_LABELS,
             "value": schema.AssociatedFileType.TENSOR_VALUE_LABELS}
    labels = schema.AssociatedFileT()
    labels.name, labels.description = LABELS_FILE, "Labels for categories that the model can recognize."
    labels.type = kinds[attached_to]
    return labels



def bert_tokenizer_unit() -> Any:
    """The input process unit of a BERT model: MediaPipe runs WordPiece with the packed vocab.txt."""
    schema = metadata_schema()
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.BertTokenizerOptions
    unit.options = schema.BertTokenizerOptionsT()
    unit.options.vocabFile = [_vocab_file_metadata()]
    return unit



def regex_tokenizer_unit(delimiter_regex: str) -> Any:
    """The process unit of a token-id input: MediaPipe splits with the RE2 regex and looks pieces up in vocab.txt."""
    schema = metadata_schema()
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.RegexTokenizerOptions
    unit.options = schema.RegexTokenizerOptionsT()
    unit.options.delimRegexPattern = delimiter_regex
    unit.options.vocabFile = [_vocab_file_metadata()]
    return unit



def box_metadata(name: str, description: str, index: Sequence[int]) -> Any:
    """A box output: BOUNDARIES in RATIO coordinates, `index` = where left, top, right, bottom sit in the last axis."""
    schema = metadata_schema()
    tensor = tensor_metadata(name, description, schema.ContentProperties.BoundingBoxProperties)
    tensor.content.contentProperties = schema.BoundingBoxPropertiesT()
    tensor.content.contentProperties.index = list(index)
    tensor.content.contentProperties.type = schema.BoundingBoxType.BOUNDARIES
    tensor.content.contentProperties.coordinateType = schema.CoordinateType.RATIO
    return tensor



def content_dimension(tensor: Any, dimension: int) -> Any:
    """Say which dimension of the tensor holds its content (e.g. 2: one box or score per detection of [1, N])."""
    tensor.content.range = metadata_schema().ValueRangeT()
    tensor.content.range.min, tensor.content.range.max = dimension, dimension
    return tensor



def subgraph_metadata(inputs: Sequence[Any], outputs: Sequence[Any], input_units: Sequence[Any] | None = None,
                      output_groups: Mapping[str, Sequence[str]] | None = None) -> Any:
    """The one subgraph's metadata: tensors in the model's order, process units shared by all inputs (a BERT
    tokenizer), named groups of outputs (an object detector's "detection_result")."""
    schema = metadata_schema()
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = list(inputs), list(outputs)
    if input_units is not None:
        subgraph.inputProcessUnits = list(input_units)
    if output_groups is not None:
        subgraph.outputTensorGroups = []
        for name, tensor_names in output_groups.items():
            group = schema.TensorGroupT()
            group.name, group.tensorNames = name, list(tensor_names)
            subgraph.outputTensorGroups.append(group)
    return subgraph



def model_metadata(subgraph: Any, name: str, description: str, version: str | None, author: str | None,
                    license: str | None) -> Any:
    """The whole ModelMetadata: the model card (name, description, version, author, licence) over the subgraph."""
    schema = metadata_schema()
    metadata = schema.ModelMetadataT()
    metadata.name, metadata.description, metadata.version = name, description, version
    metadata.author, metadata.license = author, license
    metadata.subgraphMetadata = [subgraph]
    return metadata



def packed_files(labels: Sequence[str], extra_files: Mapping[str, bytes] | None,
                 vocab: bytes | None = None) -> dict[str, bytes]:
    """The files `populate` zips on: labels.txt, the tokenizer's vocab.txt when there is one, the extra files."""
    files = {LABELS_FILE: _lines_file(labels)}
    if vocab is not None:
        files[VOCAB_FILE] = vocab
    return {**files, **dict(extra_files or {})}



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



def _lines_file(items: Sequence[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode("utf-8")



def _vocab_file_metadata() -> Any:
    schema = metadata_schema()
    vocab = schema.AssociatedFileT()
    vocab.name = VOCAB_FILE
    vocab.description = "Vocabulary file to convert natural language words to embedding vectors."
    vocab.type = schema.AssociatedFileType.VOCABULARY
    return vocab



def _value_range(low: list[float], high: list[float]) -> Any:
    stats = metadata_schema().StatsT()
    stats.min, stats.max = low, high
    return stats



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
