"""The text task: strings in, class probabilities out.

Tokenisation is the training code's: inside the model for TextVectorization
models (.keras, SavedModel), or `dlpipe.data.text.make_text_encoder` with the
vocabulary shipped with the artifact (WordPiece models, every .tflite).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import ClassificationTask, InputSet, LabelledData, PreparedBatch

if TYPE_CHECKING:
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models.artifacts import SideFiles

# the vocabulary file a TextVectorization model's .tflite ships with (WordPiece models ship their vocab.txt)
VOCABULARY_FILE = "vocabulary.txt"
# .tflite input names (MediaPipe's BERT convention) -> the encoder's arrays; None: zeros (one segment)
TFLITE_ALIASES = {"ids": "input_ids", "mask": "attention_mask", "segment_ids": None}


class TextTask(ClassificationTask):
    """Texts -> label probabilities; a batch is a list of strings."""

    name = "text"
    exporters_module = "dlpipe.models.export.text"
    description = "text classification: labelled sentences (text<TAB>label)"

    def preprocessing_from_dict(self, values: dict[str, Any]) -> "TextPreprocessing":
        from dlpipe.data.text import TextPreprocessing

        return TextPreprocessing.from_dict(values)

    def side_files_for(self, model: Any, prep: "TextPreprocessing") -> dict[str, Path]:
        """The vocabulary: WordPiece's vocab.txt, or the TextVectorization layer's tokens in id order."""
        import tempfile

        from dlpipe import atomic

        if prep.tokenizer == "wordpiece":
            if not prep.vocab_file or not Path(prep.vocab_file).is_file():
                raise DataError(str(prep.vocab_file), "the WordPiece vocabulary is missing; it belongs beside the model")
            return {Path(prep.vocab_file).name: Path(prep.vocab_file)}
        try:
            tokens = [str(token) for token in model.get_layer("vectorize").get_vocabulary()]
        except ValueError:
            return {}  # not a dlpipe text classifier: nothing to ship
        path = Path(tempfile.mkdtemp(prefix="dlpipe-vocabulary-")) / VOCABULARY_FILE
        # one token a line, line number = id (line 1 is "" for padding, line 2 "[UNK]")
        atomic.write_text(path, "".join(f"{token}\n" for token in tokens))
        return {VOCABULARY_FILE: path}

    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        """The lines of .txt/.tsv/.csv/.jsonl files; ids are "file:line", unreadable lines keep theirs with an error."""
        from dlpipe.data.text import read_unlabelled_texts

        inputs = InputSet()
        for source in sources:
            for key, text, error in read_unlabelled_texts(source):
                inputs.add(key, text, error)
        return inputs

    def batches(self, inputs: InputSet, prep: "TextPreprocessing", batch_size: int) -> Iterator[PreparedBatch]:
        readable = [key for key in inputs.ids if key not in inputs.errors]
        for start in range(0, len(readable), batch_size):
            chunk = readable[start:start + batch_size]
            yield PreparedBatch(chunk, [inputs.payloads[key] for key in chunk], {})

    def prepare(self, raw: Any, prep: "TextPreprocessing") -> str:
        if not isinstance(raw, str):
            raise DataError("instance", f"this model takes text; send strings. Received: {type(raw).__name__}")
        return raw

    def stack(self, items: Sequence[Any]) -> list[str]:
        return [str(item) for item in items]

    def labelled_data(self, path: Path) -> LabelledData:
        from dlpipe.data.text import read_labelled_text

        if not path.is_file():
            raise DataError(str(path), "a text model is evaluated on a file of text<TAB>label lines (or .csv)")
        table = read_labelled_text([path])
        inputs = InputSet()
        for number, text in enumerate(table.texts):
            inputs.add(f"{path}#{number}", text)
        skipped = [{"path": f"{file}:{line}", "reason": reason} for file, line, reason in table.skipped]
        return LabelledData(inputs, list(table.labels), skipped)

    def row_fields(self, payload: Any) -> dict[str, Any]:
        return {"text": payload}

    def keras_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], Any]:
        import tensorflow as tf

        if prep.tokenizer == "wordpiece":  # a MiniLM model takes WordPiece ids
            return self._encoder(prep, side)
        return lambda batch: tf.constant(list(batch), tf.string)  # TextVectorization is inside the model

    def before_savedmodel_load(self, prep: "TextPreprocessing") -> None:
        if prep.tokenizer == "wordpiece":
            import tensorflow_text  # noqa: F401  (registers the ops of the in-graph WordPiece tokenizer)

    def savedmodel_predict(self, loaded: Any, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_default" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_default signature; export it again with dlpipe export")
        signature = loaded.signatures["serving_default"]
        return lambda batch: signature(text=tf.constant(list(batch), tf.string))["probabilities"].numpy()

    def tflite_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        encode = self._encoder(prep, side)

        def feed(batch: Any, details: list[dict[str, Any]]) -> list[np.ndarray]:
            encoded = encode(list(batch))
            return [_input_for(detail["name"], encoded, side) for detail in details]  # matched by name

        return feed

    @staticmethod
    def _encoder(prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
        from dlpipe.data.text import make_text_encoder

        name = prep.vocab_file if prep.tokenizer == "wordpiece" else VOCABULARY_FILE
        return make_text_encoder(prep, side.file(name))


def _input_for(tensor_name: str, encoded: dict[str, np.ndarray], side: "SideFiles") -> np.ndarray:
    """The encoder's array for one .tflite input: its name as exported ("serving_default_ids:0" -> "ids").

    Names of MediaPipe's BERT convention map to the WordPiece encoder's arrays (segment_ids: all zeros,
    one segment); files exported before it (input_ids / attention_mask, token_ids) match as they are.
    """
    name = tensor_name.rsplit(":", 1)[0].removeprefix("serving_default_")
    if name in encoded:
        return encoded[name]
    if name in TFLITE_ALIASES and "input_ids" in encoded:
        alias = TFLITE_ALIASES[name]
        return np.zeros_like(encoded["input_ids"]) if alias is None else encoded[alias]
    matches = [key for key in encoded if key in tensor_name]
    if len(matches) != 1:
        raise DataError(str(side.folder), f"the .tflite input '{tensor_name}' is none of "
                                          f"{sorted(set(encoded) | set(TFLITE_ALIASES))}; export the model again "
                                          "with dlpipe export")
    return encoded[matches[0]]


TASK = TextTask  # registered by dlpipe.models.tasks.TASK_MODULES
