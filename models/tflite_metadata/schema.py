"""The metadata schema classes and the constants every module of the package shares (a leaf: imports none of them)."""

from __future__ import annotations

from dlpipe.errors import DlpipeError

METADATA_NAME = "TFLITE_METADATA"  # the model's metadata buffer that holds the ModelMetadata flatbuffer


METADATA_IDENTIFIER = b"M001"


MODEL_IDENTIFIER = b"TFL3"


LABELS_FILE = "labels.txt"


VOCAB_FILE = "vocab.txt"


BERT_INPUTS = ("ids", "mask", "segment_ids")  # the metadata names MediaPipe's BERT preprocessor looks for


REGEX_PAD, REGEX_UNKNOWN = "<PAD>", "<UNKNOWN>"


def metadata_schema():
    """The generated metadata classes, imported late so that a missing set-up step fails with its fix."""
    try:
        from dlpipe.models import _metadata_schema_py_generated as schema
    except ImportError:
        raise DlpipeError("TFLite metadata: models/_metadata_schema_py_generated.py is missing; "
                          "run `python scripts/fetch_metadata_schema.py` (scripts/setup.sh does)") from None
    return schema


def text_of(value: str | bytes | None) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")
