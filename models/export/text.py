"""Exporters of the text task: a SavedModel that takes raw strings, and TFLite that takes token ids.

`serving_default` takes `text` (string[N]) whatever the model: TextVectorization
models (recurrent, transformer) already take strings; WordPiece models (MiniLM)
get the in-graph tokenizer of `dlpipe.data.tf_wordpiece` in front, so clients
send text and never need the vocabulary, plus `serving_token_ids` (input_ids,
attention_mask) for callers that tokenise themselves. Outputs match the image
SavedModel: probabilities, label, score. A WordPiece SavedModel uses
TensorFlow Text ops: whatever loads it must `import tensorflow_text` first.

A text .tflite takes int32 token ids (see `text_twin` for why, and how
recurrent models convert); its vocabulary is one of its side files. It also
carries the standard text-classifier metadata, so MediaPipe Tasks'
TextClassifier takes raw strings and names labels:
- WordPiece (MiniLM): inputs ids, mask, segment_ids and a BertTokenizer
  process unit with the vocab.txt packed in (MediaPipe lower-cases, splits,
  runs WordPiece and adds [CLS]/[SEP] as dlpipe's tokenizer does);
- TextVectorization models: a RegexTokenizer process unit whose vocabulary
  lists every spelling of each token that Keras maps to its id, including
  the spellings of the training texts (`ExportRequest.calibration`). RE2
  cannot lower-case or delete punctuation inside a word, so unseen text
  tokenises as in Keras except words spelt in a way not listed ("gOOd",
  "e-mail" unless seen in training): the file's description says so.
  Only standardize "lower_and_strip_punctuation" (the default) gets this
  metadata; other settings keep dlpipe's buffers only, with a warning.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import keras
import tensorflow as tf

from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import DataError
from dlpipe.models import artifacts, tflite_metadata
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import export_archive, labelled_outputs, quantization_of, write_keras
from dlpipe.models.export.text_twin import convert_twin, inference_model
from dlpipe.models.export.web import WEB_MODEL, WebPage, write_web_folder

TASK = "text"

register(TASK, "keras")(write_keras)
refuse(TASK, "tflite-int8", "full-integer int8 text models convert but do not run in LiteRT (the recurrent models "
                            "fail in the XNNPACK interpreter, the transformer in a quantised DIV); use tflite-dynamic "
                            "(int8 weights, about 4x smaller) or tflite-float16")


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (text: string[N]), plus `serving_token_ids` for WordPiece models."""
    prep: TextPreprocessing = request.bundle.preprocessing
    class_names = request.bundle.class_names

    def outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        return labelled_outputs(probabilities, class_names)

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    archive = export_archive(model)
    if prep.tokenizer == "vectorize":
        archive.add_endpoint("serving_default", lambda text: outputs(model(text, training=False)), [text_spec])
    elif prep.tokenizer == "wordpiece":
        from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer

        vocab = request.bundle.extra_files.get(Path(prep.vocab_file or "").name)
        if not vocab:
            raise DataError(str(target), "a WordPiece model needs its vocab.txt to export; it belongs beside the model")
        length = prep.sequence_length
        _check_sequence_length(model, length, target)
        tokenizer = TFWordPieceTokenizer(str(vocab), length)
        archive.track(tokenizer)  # its lookup table (the vocabulary) is saved inside the SavedModel

        def from_ids(input_ids: tf.Tensor, attention_mask: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs(model({"input_ids": input_ids, "attention_mask": attention_mask}, training=False))

        archive.add_endpoint("serving_default", lambda text: from_ids(**tokenizer(text)), [text_spec])
        archive.add_endpoint("serving_token_ids", from_ids, [tf.TensorSpec([None, length], tf.int32, name="input_ids"),
                                                             tf.TensorSpec([None, length], tf.int32, name="attention_mask")])
    else:
        raise DataError(str(target), f"unknown text tokenizer {prep.tokenizer!r}; expected 'vectorize' or 'wordpiece'")
    archive.write_out(str(target), verbose=False)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """int32 ids [N, L] in, probabilities out; float32, float16 weights or dynamic-range int8 weights."""
    prep: TextPreprocessing = request.bundle.preprocessing
    twin, input_names = inference_model(model, prep)
    remap = {}
    vocab = request.bundle.extra_files.get(Path(prep.vocab_file or "").name) if prep.tokenizer == "wordpiece" else None
    if vocab:
        from dlpipe.data.wordpiece import WordPieceTokenizer, bert_framing_remap

        remap = bert_framing_remap(WordPieceTokenizer.from_vocab_file(vocab).vocab)
    flatbuffer = convert_twin(twin, input_names, prep.sequence_length, quantization_of(fmt), remap)
    standard, description = _standard_metadata(request, target)
    target.write_bytes(artifacts.tflite_bytes(flatbuffer, request.bundle, standard, description))


WEB_PAGE = WebPage(
    package="tasks-text", bundle="text_bundle.mjs", resolver="forTextTasks", classifier="TextClassifier",
    title="dlpipe text classifier",
    input_html='<p><textarea id="texts" rows="6" cols="80" placeholder="one text a line"></textarea><br>'
               '<button id="go">Classify</button></p>',
    read_inputs_js="inputs = await (await fetch(given)).json();",
    read_user_js='inputs = document.getElementById("texts").value.split("\\n").filter(line => line.trim());',
    prepare_js="const value = item;")


@register(TASK, "web")
def export_web(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """A folder with the float32 .tflite (tokenizer metadata included), a page and MediaPipe's web files."""
    target.mkdir(parents=True, exist_ok=True)
    export_tflite(model, target / WEB_MODEL, request, "tflite")
    write_web_folder(target, WEB_PAGE)


def _standard_metadata(request: ExportRequest, target: Path) -> tuple[artifacts.StandardMetadata | None, str]:
    """The MediaPipe text-classifier metadata writer for this model's tokenizer, and the file's description."""
    from dlpipe.data.text import read_vocabulary
    from dlpipe.models.tasks.text import VOCABULARY_FILE

    prep: TextPreprocessing = request.bundle.preprocessing
    files = request.bundle.extra_files
    length = prep.sequence_length
    if prep.tokenizer == "wordpiece":
        vocab = files.get(Path(prep.vocab_file or "").name)
        if not vocab:
            raise DataError(str(target), "a WordPiece model needs its vocab.txt to export; it belongs beside the model")
        return (functools.partial(tflite_metadata.bert_text_classifier_metadata, vocab=Path(vocab).read_bytes()),
                f"Classifies text into {len(request.bundle.class_names)} classes. Inputs: WordPiece ids, mask and "
                f"segment ids of {length} tokens ([CLS] text [SEP], lower-cased; an MPNet model maps [CLS]/[SEP] "
                "to its <s>/</s> inside the graph); MediaPipe's BertTokenizer makes them from the packed vocab.txt "
                "exactly as dlpipe does.")
    if prep.standardize != "lower_and_strip_punctuation" or VOCABULARY_FILE not in files:
        warnings.warn(f"export: {target.name.removeprefix('.partial-')}: standardize={prep.standardize!r} has no MediaPipe RegexTokenizer "
                      "equivalent; the file runs in dlpipe (and LiteRT with dlpipe's ids) but not in MediaPipe's "
                      "TextClassifier", stacklevel=2)
        return None, ""
    texts = [str(text) for text in request.calibration]
    vocab = tflite_metadata.text_vectorization_vocabulary(read_vocabulary(files[VOCABULARY_FILE]), texts)
    return (functools.partial(tflite_metadata.regex_text_classifier_metadata, vocab=vocab),
            f"Classifies text into {len(request.bundle.class_names)} classes. Input: {length} TextVectorization "
            "token ids (lower-cased, punctuation stripped, split on whitespace). MediaPipe's RegexTokenizer "
            "reproduces them with the packed vocab.txt, which lists each token's spellings (capitalised, upper "
            f"case, contractions, and every spelling in the {len(texts)} training texts); a word spelt otherwise "
            "(e.g. \"gOOd\", or \"e-mail\" unseen) becomes <UNKNOWN> where Keras would find it: dlpipe's "
            "runtime, which tokenises with Keras, is exact.")


def _check_sequence_length(model: keras.Model, length: int, folder: Path) -> None:
    for tensor in model.inputs:
        if len(tensor.shape) == 2 and tensor.shape[1] not in (None, length):
            raise DataError(str(folder), f"the model takes {tensor.shape[1]} tokens but preprocessing.sequence_length "
                                         f"is {length}; export with the sequence length it was trained with")
