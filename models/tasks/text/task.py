"""The text task: strings in, class probabilities out.

Tokenisation is the artifact's tokenizer's (`dlpipe.models.text_tokenizers`, named in preprocessing.json):
inside the model for `words` models (.keras, SavedModel), or its Python encoder with the vocabulary shipped
with the artifact (`wordpiece` models, every .tflite).
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
    from dlpipe.models.text_tokenizers import TextTokenizer


class TextTask(ClassificationTask):
    """Texts -> label probabilities; a batch is a list of strings."""

    name = "text"
    exporters_module = "dlpipe.models.tasks.text.export"
    description = "text classification: labelled sentences (text<TAB>label)"

    def preprocessing_from_dict(self, values: dict[str, Any]) -> "TextPreprocessing":
        from dlpipe.data.text import TextPreprocessing

        return TextPreprocessing.from_dict(values)

    def side_files_for(self, model: Any, prep: "TextPreprocessing") -> dict[str, Path]:
        """The tokenizer's vocabulary (a WordPiece vocab.txt, or the TextVectorization layer's tokens in id order)."""
        return _tokenizer(prep).side_files(model, prep)

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
        return _tokenizer(prep, side.folder).keras_feed(prep, side)

    def before_savedmodel_load(self, prep: "TextPreprocessing") -> None:
        _tokenizer(prep).before_savedmodel_load()

    def savedmodel_predict(self, loaded: Any, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_default" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_default signature; export it again with dlpipe export")
        signature = loaded.signatures["serving_default"]
        return lambda batch: signature(text=tf.constant(list(batch), tf.string))["probabilities"].numpy()

    def tflite_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        return _tokenizer(prep, side.folder).tflite_feed(prep, side)


def _tokenizer(prep: "TextPreprocessing", where: Any = "preprocessing.json") -> "TextTokenizer":
    from dlpipe.models.text_tokenizers import tokenizer_for

    return tokenizer_for(prep, where)


TASK = TextTask  # registered by dlpipe.models.tasks.TASK_MODULES
