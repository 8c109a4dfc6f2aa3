"""Standard TFLite Metadata: what MediaPipe Tasks (and the TFLite Task Library) read from a .tflite file.

Why: a dlpipe .tflite carries its labels in dlpipe's own named buffers, which
no edge runtime reads; MediaPipe's `ImageClassifier` refuses a float input
without `NormalizationOptions`, and its `TextClassifier` needs a tokenizer
description to take raw strings. This module writes the standard metadata
exactly as tflite-support's `MetadataPopulator` does, so the file alone runs
in MediaPipe with label names, and dlpipe can read labels, vocabulary and any
extra file (e.g. preprocessing.json) back from that one file:

- a `ModelMetadata` flatbuffer (file identifier "M001", classes generated from
  metadata_schema.fbs; see scripts/fetch_metadata_schema.py for where they come
  from) is stored in the model's metadata buffer named "TFLITE_METADATA"
  (replacing an older one; other metadata buffers are kept);
- the associated files (labels.txt as `TENSOR_AXIS_LABELS` of the score
  tensor, the tokenizer's vocab.txt as `VOCABULARY`, extra files recorded in
  `ModelMetadata.associated_files`) are zipped, uncompressed, onto the end of
  the flatbuffer. LiteRT ignores the zip; MediaPipe reads files from it by name.

All writers are pure functions: flatbuffer bytes in, new file bytes out. A
previous zip tail is dropped, so writing twice gives the same result as once.

What the model must look like (MediaPipe checks these at load; the writers
check them first and say what to change):
- image classifiers: one input [1, H, W, 3], float32 or uint8, RGB; one score
  output [1, classes]. Convert from a concrete function with a
  `tf.TensorSpec([1, H, W, 3])` input (or from a Keras model, whose dynamic
  batch becomes a stored shape of [1, H, W, 3] with signature [-1, H, W, 3]).
  `mean`/`std` describe the float input: MediaPipe feeds (pixel - mean) / std,
  so a dlpipe model (pixels in [0, 255], normalisation inside) takes mean 0,
  std 1. For a uint8 model MediaPipe feeds the raw bytes and the options only
  describe the float input, as in tflite-support's image_classifier writer; the
  bytes mean what the model expects only when the input's scale is about
  1 / std and its zero point the mean (a warning says when not).
- conversion: freeze the variables (convert_variables_to_constants_v2) when
  converting from a concrete function; given the Keras model as trackable
  object, the converter keeps variables that LiteRT reads uninitialised.
- BERT text classifiers: three int32 inputs [1, L] (ids, mask, segment_ids, in
  any order: they are told apart by the metadata names "ids", "mask",
  "segment_ids" written here). MediaPipe lower-cases ASCII, splits on
  whitespace and punctuation, runs WordPiece with the packed vocab.txt and adds
  [CLS]/[SEP].
- regex text classifiers: one int32 input [1, L]; MediaPipe splits the text
  with the delimiter regex (RE2) and looks every piece up in a vocabulary of
  "token id" lines that must hold <PAD> and <UNKNOWN> (and may hold <START>).
  `text_vectorization_vocabulary` builds one that reproduces Keras
  `TextVectorization(standardize="lower_and_strip_punctuation")` ids.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import flatbuffers

from dlpipe.errors import DlpipeError

METADATA_NAME = "TFLITE_METADATA"  # the model's metadata buffer that holds the ModelMetadata flatbuffer
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
LABELS_FILE = "labels.txt"
VOCAB_FILE = "vocab.txt"
BERT_INPUTS = ("ids", "mask", "segment_ids")  # the metadata names MediaPipe's BERT preprocessor looks for
# Splits as Keras "lower_and_strip_punctuation" + whitespace split does, for text_vectorization_vocabulary:
# whitespace runs with the punctuation touching them, and punctuation at the start or end of the text.
# Punctuation inside a word stays in the piece ("don't"); the vocabulary maps such forms to Keras' id.
KERAS_DELIMITER_REGEX = r"[[:punct:]]*[[:space:]]+[[:punct:]]*|^[[:punct:]]+|[[:punct:]]+$"
REGEX_PAD, REGEX_UNKNOWN = "<PAD>", "<UNKNOWN>"
_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def _schema():
    """The generated metadata classes, imported late so that a missing set-up step fails with its fix."""
    try:
        from dlpipe.models import _metadata_schema_py_generated as schema
    except ImportError:
        raise DlpipeError("TFLite metadata: models/_metadata_schema_py_generated.py is missing; "
                          "run `python scripts/fetch_metadata_schema.py` (scripts/setup.sh does)") from None
    return schema


# --------------------------------------------------------------------------------------------- writers


def image_input_metadata(description: str, mean: Sequence[float], std: Sequence[float], uint8: bool = False) -> Any:
    """The metadata of an RGB image input: colour space, NormalizationOptions (mean, std) and its value range."""
    schema = _schema()
    tensor = _tensor_metadata("image", description, schema.ContentProperties.ImageProperties)
    tensor.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    unit.options = schema.NormalizationOptionsT()
    unit.options.mean, unit.options.std = mean, std
    tensor.processUnits = [unit]
    # tflite-support's writer: a uint8 input's range is the bytes; a float one's is the normalised pixel range
    tensor.stats = _stats([0.0], [255.0]) if uint8 else _stats(
        [(0.0 - m) / s for m, s in zip(mean, std)], [(255.0 - m) / s for m, s in zip(mean, std)])
    return tensor


def image_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], mean: Sequence[float] = (0.0,),
                              std: Sequence[float] = (1.0,), *, name: str = "dlpipe image classifier",
                              description: str = "Identifies the most prominent object in the image.",
                              version: str | None = None, author: str | None = None, license: str | None = None,
                              extra_files: Mapping[str, bytes] | None = None,
                              score_threshold: float | None = None) -> bytes:
    """The .tflite bytes with standard image-classifier metadata, labels and `extra_files` packed in.

    Args:
        flatbuffer: a converted model: one RGB input [1, H, W, 3] (float32 or uint8), one score output.
        labels: class names in output order.
        mean, std: one value or one per channel; the model's float input is (pixel - mean) / std
            for pixels in [0, 255]. dlpipe's models normalise inside, hence the defaults 0 and 1.
        extra_files: more files to pack (name -> bytes), e.g. preprocessing.json.
        score_threshold: a global score threshold (ScoreThresholdingOptions) MediaPipe applies by default, e.g.
            0.5 for a multi-label model whose per-label thresholds are folded into its scores.

    Raises:
        DlpipeError: the model's tensors are not what MediaPipe's ImageClassifier accepts.
        ValueError: bad labels, mean/std or file names.
    """
    schema = _schema()
    graph = _graph(flatbuffer)
    image, scores = _single(graph, "inputs"), _single(graph, "outputs")
    _check_image_input(image)
    _check_scores(scores, labels)
    mean, std = _normalization(mean, std)
    _warn_raw_bytes_mismatch(image, mean, std)
    tensor = image_input_metadata("Input image to be classified (RGB).", mean, std, uint8=image["type"] == "UINT8")
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [tensor]
    subgraph.outputTensorMetadata = [_score_metadata(scores, score_threshold)]
    return _populate(flatbuffer, _model_metadata(subgraph, name, description, version, author, license),
                     {LABELS_FILE: _lines(labels), **dict(extra_files or {})})


def bert_text_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], vocab: bytes, *,
                                  ids_name: str = "ids", mask_name: str = "mask",
                                  segment_ids_name: str = "segment_ids", name: str = "dlpipe text classifier",
                                  description: str = "Classifies the input text into a set of known categories.",
                                  version: str | None = None, author: str | None = None, license: str | None = None,
                                  extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """The .tflite bytes with BERT text-classifier metadata: MediaPipe's TextClassifier then takes raw strings.

    Args:
        flatbuffer: a model with three int32 inputs [1, L] and one score output.
        labels: class names in output order.
        vocab: the WordPiece vocab.txt (one token a line, line number = id; no empty line,
            since MediaPipe skips empty lines and the ids after one would shift).
        ids_name, mask_name, segment_ids_name: the model's input tensor names (an input matches when
            its name equals the given one or contains it once, e.g. "serving_default_ids:0").
        extra_files: more files to pack (name -> bytes).
    """
    schema = _schema()
    graph = _graph(flatbuffer)
    scores = _single(graph, "outputs")
    _check_scores(scores, labels)
    roles = _bert_roles(graph["inputs"], {ids_name: "ids", mask_name: "mask", segment_ids_name: "segment_ids"})
    _check_text_inputs(graph["inputs"], 3)
    if b"\n\n" in vocab.replace(b"\r\n", b"\n") or vocab.startswith(b"\n"):
        raise ValueError("`vocab` has an empty line: MediaPipe skips it, so the ids after it would shift")
    descriptions = {"ids": "Token ids of the input text.", "mask": "1 for real tokens, 0 for padding.",
                    "segment_ids": "0 for the first sequence, 1 for the second."}
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_tensor_metadata(role, descriptions[role]) for role in roles]
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.BertTokenizerOptions
    unit.options = schema.BertTokenizerOptionsT()
    unit.options.vocabFile = [_vocab_file()]
    subgraph.inputProcessUnits = [unit]
    subgraph.outputTensorMetadata = [_score_metadata(scores)]
    return _populate(flatbuffer, _model_metadata(subgraph, name, description, version, author, license),
                     {LABELS_FILE: _lines(labels), VOCAB_FILE: vocab, **dict(extra_files or {})})


def regex_text_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], vocab: bytes,
                                   delimiter_regex: str = KERAS_DELIMITER_REGEX, *,
                                   name: str = "dlpipe text classifier",
                                   description: str = "Classifies the input text into a set of known categories.",
                                   version: str | None = None, author: str | None = None,
                                   license: str | None = None,
                                   extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """The .tflite bytes with regex-tokenizer text-classifier metadata (one int32 token-id input).

    Args:
        flatbuffer: a model with one int32 input [1, L] and one score output.
        labels: class names in output order.
        vocab: "token id" lines holding <PAD> and <UNKNOWN>; `text_vectorization_vocabulary` makes one
            from a Keras TextVectorization vocabulary.
        delimiter_regex: RE2 pattern of what separates tokens (the default mirrors Keras'
            "lower_and_strip_punctuation" + whitespace split).
        extra_files: more files to pack (name -> bytes).
    """
    schema = _schema()
    graph = _graph(flatbuffer)
    ids, scores = _single(graph, "inputs"), _single(graph, "outputs")
    _check_text_inputs([ids], 1)
    _check_scores(scores, labels)
    _check_regex_vocab(vocab)
    tensor = _tensor_metadata("input_text", "Token ids of the input text.")
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.RegexTokenizerOptions
    unit.options = schema.RegexTokenizerOptionsT()
    unit.options.delimRegexPattern = delimiter_regex
    unit.options.vocabFile = [_vocab_file()]
    tensor.processUnits = [unit]
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [tensor]
    subgraph.outputTensorMetadata = [_score_metadata(scores)]
    return _populate(flatbuffer, _model_metadata(subgraph, name, description, version, author, license),
                     {LABELS_FILE: _lines(labels), VOCAB_FILE: vocab, **dict(extra_files or {})})


def text_vectorization_vocabulary(vocabulary: Sequence[str], texts: Iterable[str] = ()) -> bytes:
    """A RegexTokenizer vocabulary giving the ids of Keras `TextVectorization` "lower_and_strip_punctuation".

    Why more than the tokens: MediaPipe's RegexTokenizer neither lower-cases nor
    deletes punctuation inside a word, so each id is listed under the spellings
    that Keras maps to it: the token, its English contractions ("well" ->
    "we'll", "friends" -> "friend's"), their ASCII Capitalised and UPPER forms,
    and every piece of `texts` (split with KERAS_DELIMITER_REGEX) whose Keras
    form is in the vocabulary. Every spelling listed is one Keras maps to that
    id, so extra spellings never change an id, they only turn <UNKNOWN> into
    the right one. Pass the training texts: then those texts tokenise exactly
    as in Keras; other text differs only where a word is spelt in a way not
    listed (e.g. "gOOd", "e-mail").

    Args:
        vocabulary: `TextVectorization.get_vocabulary()`: "" (padding, id 0), "[UNK]" (id 1), tokens.
        texts: raw texts whose spellings to add, typically the training set.
    """
    tokens = list(vocabulary)
    if tokens[:2] != ["", "[UNK]"]:
        raise ValueError('`vocabulary` must start with "" and "[UNK]" (TextVectorization.get_vocabulary())')
    ids = {token: index for index, token in enumerate(tokens) if index >= 2}
    spellings: dict[str, int] = {}
    for token, index in ids.items():
        for spelling in (token, *_contractions(token)):
            for form in (spelling, _ascii_capitalize(spelling), _ascii_upper(spelling)):
                spellings.setdefault(form, index)
    for text in texts:
        for piece in _pieces(text):
            index = ids.get(_keras_standardize(piece))
            if index is not None:
                spellings.setdefault(piece, index)
    lines = [f"{REGEX_PAD} 0", f"{REGEX_UNKNOWN} 1"] + [f"{form} {index}" for form, index in spellings.items()]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


# --------------------------------------------------------------------------------------------- readers


def read_metadata(model: str | Path | bytes) -> dict[str, Any] | None:
    """The standard metadata of a .tflite file as plain data (enums by name), or None when it has none.

    Keys follow the schema's field names (`subgraphMetadata`, `inputTensorMetadata`,
    `processUnits`, `associatedFiles`, ...); unset fields are left out.
    """
    schema = _schema()
    buffer = _metadata_buffer(_bytes(model), METADATA_NAME)
    if buffer is None:
        return None
    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
        raise DlpipeError(f"TFLite metadata: the {METADATA_NAME} buffer is not a ModelMetadata flatbuffer")
    return _plain(schema.ModelMetadataT.InitFromPackedBuf(buffer, 0), schema)


def associated_files(model: str | Path | bytes) -> dict[str, bytes]:
    """Every file packed onto the end of a .tflite file (name -> bytes); {} when none."""
    data = _bytes(model)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
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


# --------------------------------------------------------------------------------------------- building blocks


def _model_metadata(subgraph: Any, name: str, description: str, version: str | None, author: str | None,
                    license: str | None) -> Any:
    schema = _schema()
    metadata = schema.ModelMetadataT()
    metadata.name, metadata.description, metadata.version = name, description, version
    metadata.author, metadata.license = author, license
    metadata.subgraphMetadata = [subgraph]
    return metadata


def _tensor_metadata(name: str, description: str, content_type: int | None = None) -> Any:
    """A TensorMetadata with feature (or image) content, as tflite-support's TensorMd creates it."""
    schema = _schema()
    content_type = schema.ContentProperties.FeatureProperties if content_type is None else content_type
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = content_type
    tensor.content.contentProperties = (schema.ImagePropertiesT() if content_type == schema.ContentProperties.ImageProperties
                                        else schema.FeaturePropertiesT())
    return tensor


def _score_metadata(scores: dict[str, Any], score_threshold: float | None = None) -> Any:
    schema = _schema()
    tensor = _tensor_metadata("probability", "Probabilities of the labels respectively.")
    tensor.stats = _stats([0.0], [255.0]) if scores["type"] == "UINT8" else _stats([0.0], [1.0])
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


def _vocab_file() -> Any:
    schema = _schema()
    vocab = schema.AssociatedFileT()
    vocab.name, vocab.description = VOCAB_FILE, "Vocabulary file to convert natural language words to embedding vectors."
    vocab.type = schema.AssociatedFileType.VOCABULARY
    return vocab


def _stats(low: list[float], high: list[float]) -> Any:
    stats = _schema().StatsT()
    stats.min, stats.max = low, high
    return stats


def _populate(flatbuffer: bytes, metadata: Any, files: Mapping[str, bytes]) -> bytes:
    """Record the extra files, stamp the parser version, store the metadata and zip the files on."""
    schema = _schema()
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
    model = _with_buffer(flatbuffer, METADATA_NAME, bytes(builder.Output()))
    return _zip_onto(model, files)


def _extra_file(file_name: str) -> Any:
    schema = _schema()
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
                names.append(_text(value.name))
            for item in vars(value).values():
                visit(item)

    visit(metadata)
    return names


def _min_parser_version(metadata: Any) -> str:
    """The oldest metadata parser that understands every field used (the schema's History table)."""
    schema = _schema()
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


def _with_buffer(flatbuffer: bytes, name: str, data: bytes) -> bytes:
    """The model flatbuffer with metadata buffer `name` set to `data` (added, or replaced in place)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    entries = list(model.metadata or [])
    for entry in entries:
        if _text(entry.name) == name:
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


def _zip_onto(model: bytes, files: Mapping[str, bytes]) -> bytes:
    """Append the files as a zip archive, stored uncompressed: MediaPipe reads them in place."""
    out = io.BytesIO()
    out.write(model)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for file_name, data in files.items():
            archive.writestr(zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


# --------------------------------------------------------------------------------------------- model checks


def _graph(flatbuffer: bytes) -> dict[str, list[dict[str, Any]]]:
    """Name, type, shape and shape signature of the first subgraph's inputs and outputs."""
    from tensorflow.lite.python import schema_py_generated as tfl

    data = bytearray(flatbuffer)
    if not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise DlpipeError("TFLite metadata: not a .tflite flatbuffer (no TFL3 identifier)")
    model = tfl.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() != 1:
        raise DlpipeError(f"TFLite metadata: MediaPipe needs one subgraph, the model has {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    types = {value: key for key, value in vars(tfl.TensorType).items() if not key.startswith("_")}

    def describe(index: int) -> dict[str, Any]:
        tensor = graph.Tensors(index)
        quantization = tensor.Quantization()
        scale = float(quantization.Scale(0)) if quantization is not None and quantization.ScaleLength() else None
        zero = int(quantization.ZeroPoint(0)) if quantization is not None and quantization.ZeroPointLength() else 0
        return {"name": _text(tensor.Name()), "type": types.get(tensor.Type(), str(tensor.Type())),
                "shape": [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else [],
                "signature": [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else None,
                "scale": scale, "zero_point": zero}

    return {"inputs": [describe(graph.Inputs(i)) for i in range(graph.InputsLength())],
            "outputs": [describe(graph.Outputs(i)) for i in range(graph.OutputsLength())]}


def _single(graph: dict[str, list[dict[str, Any]]], side: str) -> dict[str, Any]:
    if len(graph[side]) != 1:
        raise DlpipeError(f"TFLite metadata: a classifier has one {side[:-1]} tensor; the model has "
                          f"{len(graph[side])}: {[t['name'] for t in graph[side]]}")
    return graph[side][0]


def _check_image_input(image: dict[str, Any]) -> None:
    shape = image["shape"]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise DlpipeError(f"TFLite metadata: MediaPipe's ImageClassifier takes one RGB image [1, H, W, 3]; the "
                          f"model's input '{image['name']}' is {shape}: convert with a [1, H, W, 3] input")
    if image["type"] not in ("FLOAT32", "UINT8"):
        raise DlpipeError(f"TFLite metadata: MediaPipe's ImageClassifier takes float32 or uint8 images; the "
                          f"model's input is {image['type']}")


def _warn_raw_bytes_mismatch(image: dict[str, Any], mean: list[float], std: list[float]) -> None:
    """MediaPipe feeds a uint8 input the image bytes as they are: the model must read them as (pixel - mean) / std.

    That holds when the input's zero point is the mean and its scale 1 / std (a
    dlpipe model: 0 and 1, from calibration images that reach 0 and 255); LiteRT
    callers that quantise with the tensor's own parameters do not depend on it.
    """
    if image["type"] != "UINT8" or image["scale"] is None or len(set(mean)) != 1 or len(set(std)) != 1:
        return
    if abs(image["scale"] * std[0] - 1.0) > 0.01 or abs(image["zero_point"] - mean[0]) > 1.0:
        warnings.warn(f"TFLite metadata: the uint8 input has scale {image['scale']:.4g} and zero point "
                      f"{image['zero_point']}; MediaPipe feeds raw pixel bytes, which this model reads as "
                      f"(pixel - mean) / std only with scale {1 / std[0]:.4g} and zero point {mean[0]:g}: "
                      "scores in MediaPipe will differ from LiteRT's", stacklevel=3)


def _check_scores(scores: dict[str, Any], labels: Sequence[str]) -> None:
    if isinstance(labels, str) or not labels or any(not str(label) or "\n" in str(label) for label in labels):
        raise ValueError(f"`labels` must be a non-empty list of one-line names. Received: labels={labels!r}")
    shape = scores["shape"]
    if len(shape) != 2 or shape[0] != 1 or shape[1] != len(labels):
        raise DlpipeError(f"TFLite metadata: the score output '{scores['name']}' is {shape}, expected "
                          f"[1, {len(labels)}] for {len(labels)} labels")
    if scores["type"] not in ("FLOAT32", "UINT8"):
        raise DlpipeError(f"TFLite metadata: scores must be float32 or uint8; the model's are {scores['type']}")


def _check_text_inputs(inputs: list[dict[str, Any]], count: int) -> None:
    if len(inputs) != count:
        raise DlpipeError(f"TFLite metadata: this text classifier takes {count} input tensor(s); the model has "
                          f"{len(inputs)}: {[t['name'] for t in inputs]}")
    for tensor in inputs:
        if tensor["type"] != "INT32" or len(tensor["shape"]) != 2 or tensor["shape"][0] != 1:
            raise DlpipeError(f"TFLite metadata: MediaPipe's TextClassifier takes int32 [1, L] inputs; "
                              f"'{tensor['name']}' is {tensor['type']} {tensor['shape']}")
    if len({tuple(tensor["shape"]) for tensor in inputs}) != 1:
        raise DlpipeError(f"TFLite metadata: the text inputs must have one length: {[t['shape'] for t in inputs]}")


def _bert_roles(inputs: list[dict[str, Any]], wanted: dict[str, str]) -> list[str]:
    """The metadata name ("ids", "mask", "segment_ids") of each model input, in the model's input order."""
    roles: list[str] = []
    for tensor in inputs:
        matches = [role for given, role in wanted.items() if tensor["name"] == given] or \
                  [role for given, role in wanted.items() if given in tensor["name"]]
        if len(matches) != 1:
            raise DlpipeError(f"TFLite metadata: input '{tensor['name']}' matches {len(matches)} of the given names "
                              f"{list(wanted)}; pass ids_name, mask_name and segment_ids_name")
        roles.append(matches[0])
    if sorted(roles) != sorted(BERT_INPUTS):
        raise DlpipeError(f"TFLite metadata: the model's inputs {[t['name'] for t in inputs]} map to {roles}, "
                          f"not to one each of {list(BERT_INPUTS)}")
    return roles


def _check_regex_vocab(vocab: bytes) -> None:
    tokens = set()
    for number, line in enumerate(vocab.decode("utf-8").splitlines(), start=1):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"`vocab` line {number} is not 'token id': {line!r}")
        tokens.add(parts[0])
    missing = [token for token in (REGEX_PAD, REGEX_UNKNOWN) if token not in tokens]
    if missing:
        raise ValueError(f"`vocab` lacks {missing}: MediaPipe's RegexTokenizer needs both")


def _normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) not in (1, 3) or len(std) != len(mean):
        raise ValueError(f"`mean` and `std` take one value or one per channel, the same count. "
                         f"Received: mean={mean}, std={std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"`std` must be positive. Received: std={std}")
    return mean, std


# --------------------------------------------------------------------------------------------- small helpers


def _bytes(model: str | Path | bytes) -> bytes:
    return bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else Path(model).read_bytes()


def _metadata_buffer(data: bytes, name: str) -> bytearray | None:
    """The bytes of the model's metadata buffer `name` (inline, or at an offset for >2 GB models)."""
    from tensorflow.lite.python import schema_py_generated as tfl

    model = tfl.Model.GetRootAs(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == name:
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset() > 1:
                return bytearray(data[buffer.Offset():buffer.Offset() + buffer.Size()])
            return bytearray(buffer.DataAsNumpy().tobytes()) if buffer.DataLength() else bytearray()
    return None


def _plain(value: Any, schema: Any, field: str = "") -> Any:
    """A generated `...T` object as dicts and lists, enum fields by name, unset fields dropped."""
    enums = {"optionsType": schema.ProcessUnitOptions, "contentPropertiesType": schema.ContentProperties,
             "colorSpace": schema.ColorSpaceType, "type": schema.AssociatedFileType}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [_plain(item, schema, field) for item in list(value)]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "__dict__"):
        return {key: _plain(item, schema, key) for key, item in vars(value).items() if item is not None}
    if field in enums and isinstance(value, int):
        names = {number: key for key, number in vars(enums[field]).items() if not key.startswith("_")}
        return names.get(value, value)
    return value.item() if hasattr(value, "item") else value


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


def _lines(items: Sequence[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode("utf-8")


def _pieces(text: str) -> list[str]:
    """`text` split as KERAS_DELIMITER_REGEX splits it in MediaPipe: whitespace, and punctuation at word edges."""
    chunks = (chunk.strip(_ASCII_PUNCTUATION) for chunk in _ASCII_SPACE.split(text))
    return [chunk for chunk in chunks if chunk]


def _keras_standardize(piece: str) -> str:
    """Keras "lower_and_strip_punctuation" on one piece: ASCII lower case (tf.strings.lower), ASCII punctuation removed."""
    return _ascii_lower(piece).translate(_STRIP)


_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # RE2's [[:space:]]; str.split() would also split on Unicode spaces
_STRIP = str.maketrans("", "", _ASCII_PUNCTUATION)
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


def _ascii_upper(text: str) -> str:
    return text.translate(_UPPER)


_CONTRACTION_ENDINGS = ("n't", "'s")  # after any word: "don't", "phone's"
# after these words only ("we'll", "they're", "could've", "i'd", "i'm"): listing "goo'd" or "fro'm" for every word
# ending in d or m made the packed vocabulary about a fifth larger for spellings no text has
_PRONOUN_ENDINGS = {
    "'ll": ("i", "you", "he", "she", "it", "we", "they", "that", "there", "who", "what"),
    "'re": ("you", "we", "they", "there", "who", "what"),
    "'ve": ("i", "you", "we", "they", "who", "could", "would", "should", "might", "must"),
    "'d": ("i", "you", "he", "she", "it", "we", "they", "that", "there", "who"),
    "'m": ("i",),
}


def _contractions(token: str) -> list[str]:
    """Spellings of `token` with an English contraction's apostrophe, which Keras strips ("dont" -> "don't")."""
    out = []
    for ending in _CONTRACTION_ENDINGS:
        letters = ending.replace("'", "")
        if len(token) > len(letters) and token.endswith(letters):
            out.append(token[:-len(letters)] + ending)
    for ending, stems in _PRONOUN_ENDINGS.items():
        letters = ending.replace("'", "")
        if token.endswith(letters) and token[:-len(letters)] in stems:
            out.append(token[:-len(letters)] + ending)
    return out


def _ascii_capitalize(text: str) -> str:
    return _ascii_upper(text[:1]) + text[1:]

