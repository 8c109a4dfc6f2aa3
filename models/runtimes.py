"""Run any exported artifact the same way: .keras, SavedModel folder or .tflite, image or text.

Each runtime's `predict(batch)` returns probabilities (N, classes). An image
artifact takes preprocessed pixels (float32 (N, S, S, 3) in [0, 255]); a text
artifact takes a list of strings, tokenised as in training: inside the model
(.keras, SavedModel) or, for TFLite, by `dlpipe.data.text.make_text_encoder`
with the vocabulary shipped beside the file. Labels and preprocessing come
from the files beside the artifact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dlpipe.data.preprocess import ImagePreprocessing
from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import DataError
from dlpipe.models import artifacts


class Runtime(ABC):
    """Labels, preprocessing and `predict(batch) -> probabilities` of one artifact."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.class_names = artifacts.read_labels(folder)
        prep = artifacts.read_preprocessing(folder)
        self.kind: str = prep.get("kind", "image")
        self.preprocessing: Any
        if self.kind == "text":
            self.preprocessing = TextPreprocessing.from_dict(prep)
        else:
            self.preprocessing = ImagePreprocessing.from_dict(prep)
            self.image_size = self.preprocessing.image_size

    @abstractmethod
    def predict(self, batch: Any) -> np.ndarray:
        """Probabilities (N, classes) for pixels (image artifacts) or a list of strings (text artifacts)."""

    def _text_encoder(self, vocabulary_file: str) -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
        from dlpipe.data.text import make_text_encoder

        return make_text_encoder(self.preprocessing, self.folder / vocabulary_file)

    @property
    def _wordpiece(self) -> bool:
        return self.kind == "text" and self.preprocessing.tokenizer == "wordpiece"


class KerasRuntime(Runtime):
    def __init__(self, path: Path):
        super().__init__(path.parent)
        self.model = artifacts.load_keras(path)
        # a MiniLM model takes WordPiece ids; the vectorize models take the strings themselves
        self._encode = self._text_encoder(self.preprocessing.vocab_file) if self._wordpiece else None

    def predict(self, batch: Any) -> np.ndarray:
        import tensorflow as tf

        if self.kind == "image":
            return np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)))
        features = self._encode(list(batch)) if self._encode else tf.constant(list(batch), tf.string)
        return np.asarray(self.model.predict_on_batch(features))


class SavedModelRuntime(Runtime):
    def __init__(self, folder: Path):
        import tensorflow as tf

        super().__init__(folder)
        if self._wordpiece:
            import tensorflow_text  # noqa: F401  (registers the ops of the in-graph WordPiece tokenizer)
        self.loaded = tf.saved_model.load(str(folder))
        name = "serving_default" if self.kind == "text" else "serving_pixels"
        if name not in self.loaded.signatures:
            raise DataError(str(folder), f"SavedModel has no {name} signature; export it again with dlpipe export")
        self._signature = self.loaded.signatures[name]
        self._bytes = self.loaded.signatures.get("serving_default") if self.kind == "image" else None

    def predict(self, batch: Any) -> np.ndarray:
        import tensorflow as tf

        if self.kind == "text":
            return self._signature(text=tf.constant(list(batch), tf.string))["probabilities"].numpy()
        return self._signature(pixels=tf.constant(batch, tf.float32))["probabilities"].numpy()

    def predict_bytes(self, images: list[bytes]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        return {k: v.numpy() for k, v in self._bytes(image_bytes=tf.constant(images, dtype=tf.string)).items()}


class TFLiteRuntime(Runtime):
    """LiteRT interpreter: texts become token ids here; uint8 inputs are quantised and outputs dequantised here."""

    def __init__(self, path: Path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(path.parent)
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._encode = None
        if self.kind == "text":
            from dlpipe.models.text_tflite import VOCABULARY_FILE

            self._encode = self._text_encoder(self.preprocessing.vocab_file if self._wordpiece else VOCABULARY_FILE)
        self._read_details()

    def _read_details(self) -> None:
        """Cache the tensor details (reading them costs more than a small model's invoke); redone after a resize."""
        self._inputs = self.interpreter.get_input_details()
        self._output = self.interpreter.get_output_details()[0]
        self._rows = int(self._inputs[0]["shape"][0])

    def predict(self, batch: Any) -> np.ndarray:
        arrays = self._input_arrays(batch, self._inputs)
        if len(arrays[0]) != self._rows:
            for detail, array in zip(self._inputs, arrays):
                self.interpreter.resize_tensor_input(detail["index"], list(array.shape))
            self.interpreter.allocate_tensors()
            self._read_details()
        for detail, array in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], _quantized(array, detail))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        scale, zero = self._output["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out

    def _input_arrays(self, batch: Any, details: list[dict[str, Any]]) -> list[np.ndarray]:
        """The arrays to feed, in the interpreter's input order (text inputs are matched by name)."""
        if self._encode is None:
            return [np.asarray(batch, np.float32)]
        encoded = self._encode(list(batch))
        by_detail = []
        for detail in details:
            names = [name for name in encoded if name in detail["name"]]
            if len(names) != 1:
                raise DataError(str(self.folder), f"the .tflite input '{detail['name']}' is none of {sorted(encoded)}; "
                                                  "export the model again with dlpipe export")
            by_detail.append(encoded[names[0]])
        return by_detail


def _quantized(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float pixels -> the quantised integers a uint8/int8 input takes; other inputs as they are."""
    scale, zero = detail["quantization"]
    if not scale:
        return array.astype(detail["dtype"], copy=False)
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(array / scale + zero), info.min, info.max).astype(detail["dtype"])


def load_runtime(path: str | Path, num_threads: int | None = None) -> Runtime:
    """The runtime for a run folder, a .keras file, a SavedModel folder or a .tflite file."""
    path = Path(path)
    if path.is_dir() and (path / "model.keras").is_file():
        return KerasRuntime(path / "model.keras")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return SavedModelRuntime(path)
    if path.is_file() and path.suffix == ".keras":
        return KerasRuntime(path)
    if path.is_file() and path.suffix == ".tflite":
        return TFLiteRuntime(path, num_threads)
    if not path.exists():
        raise DataError(str(path), "does not exist; give a run folder, a .keras file, a SavedModel folder or a .tflite file")
    raise DataError(str(path), "not a model artifact: expected a run folder, .keras, a SavedModel folder or .tflite")
