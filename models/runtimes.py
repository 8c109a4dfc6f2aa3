"""Run any exported image artifact the same way: .keras, SavedModel folder or .tflite.

Each runtime takes preprocessed pixels (float32 (N, S, S, 3) in [0, 255]) and
returns probabilities (N, classes); labels and preprocessing come from the
files beside the artifact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
import numpy as np

from dlpipe.data.preprocess import ImagePreprocessing
from dlpipe.errors import DataError
from dlpipe.models import artifacts


class Runtime(ABC):
    """Labels, preprocessing and `predict(pixels) -> probabilities` of one artifact."""

    def __init__(self, folder: Path):
        self.class_names = artifacts.read_labels(folder)
        prep = artifacts.read_preprocessing(folder)
        self.preprocessing = ImagePreprocessing.from_dict(prep)
        self.image_size = self.preprocessing.image_size

    @abstractmethod
    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for float32 pixels (N, S, S, 3) in [0, 255]."""


class KerasRuntime(Runtime):
    def __init__(self, path: Path):
        super().__init__(path.parent)
        self.model = artifacts.load_keras(path)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(np.asarray(pixels, np.float32)))


class SavedModelRuntime(Runtime):
    def __init__(self, folder: Path):
        import tensorflow as tf

        super().__init__(folder)
        self.loaded = tf.saved_model.load(str(folder))
        if "serving_pixels" not in self.loaded.signatures:
            raise DataError(str(folder), "SavedModel has no serving_pixels signature; export it with dlpipe export")
        self._pixels = self.loaded.signatures["serving_pixels"]
        self._bytes = self.loaded.signatures["serving_default"]

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._pixels(pixels=tf.constant(pixels, tf.float32))["probabilities"].numpy()

    def predict_bytes(self, images: list[bytes]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        return {k: v.numpy() for k, v in self._bytes(image_bytes=tf.constant(images, dtype=tf.string)).items()}


class TFLiteRuntime(Runtime):
    """LiteRT interpreter; uint8 models get their inputs quantised and outputs dequantised here."""

    def __init__(self, path: Path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(path.parent)
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, np.float32)
        if len(pixels) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(pixels), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = len(pixels)
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32:
            info = np.iinfo(self.input["dtype"])
            pixels = np.clip(np.round(pixels / scale + zero), info.min, info.max).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], pixels)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        if self.output["dtype"] != np.float32:
            out = (out.astype(np.float32) - zero) * scale
        return out


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
