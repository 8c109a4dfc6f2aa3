"""Standard TFLite Metadata: what MediaPipe Tasks (and the TFLite Task Library) read from a .tflite file.

Why: a dlpipe .tflite carries its labels in dlpipe's own named buffers, which
no edge runtime reads; MediaPipe's `ImageClassifier` refuses a float input
without `NormalizationOptions`, and its `TextClassifier` needs a tokenizer
description to take raw strings. This package writes the standard metadata
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

The package: `builder` (the one public builder: the pieces every writer assembles, and `populate`), one writer
per task kind over it (`image_classifier`, `text_classifier`, `object_detector`), `checks` (what MediaPipe checks
at load), `reader` (metadata back as data), `flatbuffer_files` (named buffers and the zip tail), `schema` (the
generated classes and shared constants) and `keras_vocabulary` (the regex tokenizer's vocabulary). A new task's
writer is a module beside these that imports from `builder` and `checks` only. This package exports the writers
and readers. All writers are pure functions: flatbuffer bytes in, new file bytes out. A previous zip tail is
dropped, so writing twice gives the same result as once.

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

from dlpipe.models.tflite_metadata.checks import model_graph
from dlpipe.models.tflite_metadata.image_classifier import image_classifier_metadata
from dlpipe.models.tflite_metadata.keras_vocabulary import (
    KERAS_DELIMITER_REGEX,
    text_vectorization_vocabulary,
)
from dlpipe.models.tflite_metadata.object_detector import object_detector_metadata
from dlpipe.models.tflite_metadata.reader import (
    associated_files,
    dumps,
    read_labels,
    read_metadata,
)
from dlpipe.models.tflite_metadata.text_classifier import (
    bert_text_classifier_metadata,
    regex_text_classifier_metadata,
)

__all__ = [
    # writers, one per task kind
    "bert_text_classifier_metadata", "image_classifier_metadata", "object_detector_metadata",
    "regex_text_classifier_metadata",
    # what a text writer's caller prepares
    "KERAS_DELIMITER_REGEX", "text_vectorization_vocabulary",
    # readers
    "associated_files", "dumps", "model_graph", "read_labels", "read_metadata",
]
