"""One runtime for every artifact: `load_runtime(path)` for .keras, SavedModel, .tflite and named models.

Every consumer (`dlpipe predict`, `dlpipe evaluate`, `dlpipe serve`, the Ray
engine, export parity) loads models here. A runtime's `predict(batch)` takes
a model batch as the artifact's task makes it (`task.batches`, `task.prepare`
+ `task.stack`) and returns the outputs (class probabilities (N, classes));
how each format is fed is the task's business, so nothing here knows a
modality. Labels and preprocessing come from the artifact's side files.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.models.tasks import Task, get_task


class Runtime(ABC):
    """An artifact ready to run: its task, labels, preprocessing, and `predict(batch) -> outputs`."""

    format: str = ""

    def __init__(self, path: Path, side: artifacts.SideFiles):
        self.path = path
        self.side = side
        self.task: Task = get_task(side.task)
        self.class_names: list[str] = side.class_names
        self.preprocessing: Any = self.task.preprocessing_from_dict(side.preprocessing)
        self.chosen_because = "given"

    @abstractmethod
    def predict(self, batch: Any) -> np.ndarray:
        """Outputs (N, classes) for a model batch."""

    def replica(self, num_threads: int) -> "Runtime":
        """A runtime another thread may use while this one runs. TensorFlow (Keras, SavedModel) runs concurrent
        calls of one model itself, so they share it; an interpreter is one thread's (see TFLiteRuntime)."""
        return self

    def describe(self) -> str:
        return f"{self.path} ({self.format}, {self.task.name}, {len(self.class_names)} classes)"


class KerasRuntime(Runtime):
    format = "keras"

    def __init__(self, path: Path, side: artifacts.SideFiles, model: Any = None):
        super().__init__(path, side)
        self.model = model if model is not None else artifacts.load_keras(path)
        self._feed = self.task.keras_feed(self.preprocessing, side)

    @classmethod
    def from_model(cls, model: Any, side: artifacts.SideFiles, path: str | Path = "<memory>") -> "KerasRuntime":
        """A runtime around a Keras model already in memory (export parity, named models)."""
        return cls(Path(path), side, model)

    def predict(self, batch: Any) -> np.ndarray:
        return self.task.finish(batch, np.asarray(self.model.predict_on_batch(self._feed(batch))))


class SavedModelRuntime(Runtime):
    format = "savedmodel"

    def __init__(self, path: Path, side: artifacts.SideFiles):
        import tensorflow as tf

        super().__init__(path, side)
        self.task.before_savedmodel_load(self.preprocessing)
        self.loaded = tf.saved_model.load(str(path))
        self._predict = self.task.savedmodel_predict(self.loaded, self.preprocessing, side)

    def predict(self, batch: Any) -> np.ndarray:
        return self.task.finish(batch, np.asarray(self._predict(batch)))


class TFLiteRuntime(Runtime):
    """LiteRT interpreter; quantised (uint8/int8) inputs are quantised and outputs dequantised here."""

    def __init__(self, path: Path, side: artifacts.SideFiles, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        from dlpipe.quiet import captured_output

        super().__init__(path, side)
        self.format = (artifacts.read_record(path) or {}).get("format", "tflite")
        with captured_output(stdout=False):  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads or default_threads())
            self.interpreter.allocate_tensors()
        self._feed = self.task.tflite_feed(self.preprocessing, side)
        self._read_details()

    def replica(self, num_threads: int) -> "TFLiteRuntime":
        """A second interpreter of the same file: a LiteRT interpreter must not be invoked from two threads."""
        twin = TFLiteRuntime(self.path, self.side, num_threads)
        twin.chosen_because = self.chosen_because
        return twin

    def _read_details(self) -> None:
        """Cache the tensor details (reading them costs more than a small model's invoke); redone after a resize."""
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self._rows = int(self._inputs[0]["shape"][0])
        # a graph written for one input at a time (its batch fixed at 1) runs a batch row by row
        self._one_at_a_time = int(self._inputs[0].get("shape_signature", self._inputs[0]["shape"])[0]) == 1

    def predict(self, batch: Any) -> np.ndarray:
        arrays = self._feed(batch, self._inputs)
        if self._one_at_a_time and len(arrays[0]) != 1:
            rows = [self._invoke([array[i:i + 1] for array in arrays]) for i in range(len(arrays[0]))]
            out = np.concatenate(rows) if rows else np.zeros((0,), np.float32)
        else:
            out = self._invoke(arrays)
        return self.task.finish(batch, out)

    def _invoke(self, arrays: list[np.ndarray]) -> np.ndarray:
        if len(arrays[0]) != self._rows:
            for detail, array in zip(self._inputs, arrays):
                self.interpreter.resize_tensor_input(detail["index"], list(array.shape))
            self.interpreter.allocate_tensors()
            self._read_details()
        for detail, array in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], _quantized(array, detail))
        self.interpreter.invoke()
        outputs = []
        for detail in self._outputs:
            out = self.interpreter.get_tensor(detail["index"])
            scale, zero = detail["quantization"]
            outputs.append((out.astype(np.float32) - zero) * scale if scale else out)
        return self.task.tflite_output(outputs, self._outputs)


class RuntimePool:
    """`size` replicas of one runtime, each used by one thread at a time, splitting the cores between them.

    The server's batch workers call `predict` concurrently: with LiteRT each gets its own interpreter
    (`num_threads` = cores // size), so N small batches run on N cores at once instead of queueing for one.
    """

    def __init__(self, runtime: Runtime, size: int, cores: int | None = None):
        import queue

        self.runtime = runtime
        self.size = max(1, size)
        threads = max(1, (cores or default_threads()) // self.size)
        self.threads_each = threads
        self.replicas = [runtime.replica(threads) for _ in range(self.size)]
        self._idle: "queue.Queue[Runtime]" = queue.Queue()
        for replica in self.replicas:
            self._idle.put(replica)

    def predict(self, batch: Any) -> np.ndarray:
        replica = self._idle.get()
        try:
            return replica.predict(batch)
        finally:
            self._idle.put(replica)


def pooled(runtime: Runtime, size: int) -> RuntimePool:
    """The runtime's pool of `size` replicas, made once per runtime (a batch job asks for it per chunk)."""
    pools = runtime.__dict__.setdefault("_pools", {})
    if size not in pools:
        pools[size] = RuntimePool(runtime, size)
    return pools[size]


def default_threads() -> int:
    """LiteRT threads: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _quantized(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float inputs -> the quantised integers a uint8/int8 input takes; other inputs as they are."""
    scale, zero = detail["quantization"]
    if not scale:
        return array.astype(detail["dtype"], copy=False)
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(array / scale + zero), info.min, info.max).astype(detail["dtype"])


def load_runtime(source: str | Path, artifact: str = "auto", num_threads: int | None = None) -> Runtime:
    """The runtime for a run or export folder, a .keras file, a SavedModel folder, a .tflite file or a named model.

    For a folder holding several artifacts, `artifact` picks one (see
    `artifacts.choose_artifact`; "auto" takes the fastest faithful one).
    """
    from dlpipe.models.pretrained import NAMED_MODELS

    if not Path(source).exists() and str(source) in NAMED_MODELS:
        return NAMED_MODELS.get(str(source))()
    if not Path(source).exists():
        raise DataError(str(source), "does not exist; give a run folder, a .keras file, an exported SavedModel or "
                                     f".tflite, or a named model: {', '.join(NAMED_MODELS.names())}")
    path, why = artifacts.choose_artifact(source, artifact)
    side = artifacts.read_side_files(path)
    runtime: Runtime
    if path.is_dir():
        runtime = SavedModelRuntime(path, side)
    elif path.suffix == ".keras":
        runtime = KerasRuntime(path, side)
    elif path.suffix == ".tflite":
        runtime = TFLiteRuntime(path, side, num_threads)
    else:
        raise DataError(str(path), "not a model artifact: expected a run folder, .keras, a SavedModel folder or .tflite")
    runtime.chosen_because = why
    return runtime
