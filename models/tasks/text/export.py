"""Exporters of the text task: a SavedModel that takes raw strings, and TFLite that takes token ids.

What differs by tokenizer (endpoints, the ids-in inputs, the MediaPipe process unit) is asked of the artifact's
tokenizer (`dlpipe.models.text_tokenizers`); this module never asks which one it is.

`serving_default` takes `text` (string[N]) whatever the model: `words`
models (recurrent, transformer) already take strings; `wordpiece` models (MiniLM)
get the in-graph tokenizer of `dlpipe.data.tf_wordpiece` in front, so clients
send text and never need the vocabulary, plus `serving_token_ids` (input_ids,
attention_mask) for callers that tokenise themselves. Outputs match the image
SavedModel: probabilities, label, score. A WordPiece SavedModel uses
TensorFlow Text ops: whatever loads it must `import tensorflow_text` first.

A text .tflite takes int32 token ids (see `twin` for why, and how
recurrent models convert); its vocabulary is one of its side files. It also
carries the standard text-classifier metadata, so MediaPipe Tasks'
TextClassifier takes raw strings and names labels:
- WordPiece (MiniLM): inputs ids, mask, segment_ids and a BertTokenizer
  process unit with the vocab.txt packed in (MediaPipe lower-cases, splits,
  runs WordPiece and adds [CLS]/[SEP] as dlpipe's tokenizer does);
- `words` (TextVectorization) models: a RegexTokenizer process unit whose vocabulary
  lists every spelling of each token that Keras maps to its id, including
  the spellings of the training texts (`ExportRequest.calibration`). RE2
  cannot lower-case or delete punctuation inside a word, so unseen text
  tokenises as in Keras except words spelt in a way not listed ("gOOd",
  "e-mail" unless seen in training): the file's description says so.
  Only standardize "lower_and_strip_punctuation" (the default) gets this
  metadata; other settings keep dlpipe's buffers only, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlpipe.data.text import TextPreprocessing
from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, refuse, register
from dlpipe.models.export.converters import export_archive, labelled_outputs, quantization_of, write_keras
from dlpipe.models.export.onnx import OUTPUT_NAME, write_onnx
from dlpipe.models.tasks.text.twin import convert_twin, inference_model
from dlpipe.models.export.web import WEB_MODEL, WebPage, write_web_folder
from dlpipe.models.text_tokenizers import tokenizer_for

TASK = "text"

register(TASK, "keras")(write_keras)
refuse(TASK, "tflite-int8", "full-integer int8 text models convert but do not run in LiteRT (the recurrent models "
                            "fail in the XNNPACK interpreter, the transformer in a quantised DIV); use tflite-dynamic "
                            "(int8 weights, about 4x smaller) or tflite-float16")


@register(TASK, "savedmodel")
def export_savedmodel(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """`serving_default` (text: string[N]), plus whatever endpoints the tokenizer adds (WordPiece: token ids)."""
    prep: TextPreprocessing = request.bundle.preprocessing
    class_names = request.bundle.class_names

    def outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        return labelled_outputs(probabilities, class_names)

    archive = export_archive(model)
    tokenizer_for(prep, target).add_savedmodel_endpoints(archive, model, prep, request.bundle.extra_files, outputs,
                                                         target)
    archive.write_out(str(target), verbose=False)


@register(TASK, "tflite", "tflite-float16", "tflite-dynamic")
def export_tflite(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """int32 ids [N, L] in, probabilities out; float32, float16 weights or dynamic-range int8 weights."""
    prep: TextPreprocessing = request.bundle.preprocessing
    tokenizer = tokenizer_for(prep, target)
    files = request.bundle.extra_files
    twin, input_names = inference_model(model, prep)
    remap = tokenizer.tflite_id_remap(prep, files)
    flatbuffer = convert_twin(twin, input_names, prep.sequence_length, quantization_of(fmt), remap)
    # the standard text-classifier metadata with the tokenizer's MediaPipe process unit, and the file's description
    standard, description = tokenizer.tflite_metadata(prep, files, request.calibration,
                                                      len(request.bundle.class_names), target)
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


@register(TASK, "onnx")
def export_onnx(model: keras.Model, target: Path, request: ExportRequest, fmt: str) -> None:
    """The .tflite's ids-in twin as ONNX: the same int32 inputs [N, L] by the same names, dlpipe's own ids (no
    MediaPipe id remap), so the tokenizer's feed for LiteRT feeds onnxruntime too; the vocabulary travels beside it."""
    prep: TextPreprocessing = request.bundle.preprocessing
    twin, input_names = inference_model(model, prep)
    specs = [tf.TensorSpec([None, prep.sequence_length], tf.int32, name=name) for name in input_names]

    def serve(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if len(inputs) == 1:
            return {OUTPUT_NAME: twin(inputs[0], training=False)}
        features = {ours: tensor for ours, tensor in zip(input_names.values(), inputs) if ours is not None}
        return {OUTPUT_NAME: twin(features, training=False)}

    write_onnx(serve, specs, target, request.bundle)
