"""One runtime for every artifact: `load_runtime(path)` for .keras, SavedModel, .tflite, .onnx and named models.

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
from dlpipe.models.archive_limits import check_archive_file
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
    """LiteRT interpreter; quantised (uint8/int8) inputs are quantised and outputs dequantised here.

    A batch runs in chunks whose row counts are powers of two (13 = 8 + 4 + 1), each on an
    interpreter allocated once for that count. Why: resizing an interpreter re-plans its memory
    and XNNPACK's kernels, about 1.3 ms per row for EfficientNet-Lite0 int8 on top of its 5 ms of
    inference, and a server's batches change size on every call; LiteRT on a CPU gains nothing
    per row from larger batches, so chunking costs nothing.
    """

    MAX_CHUNK = 32  # rows of the largest interpreter

    def __init__(self, path: Path, side: artifacts.SideFiles, num_threads: int | None = None):
        super().__init__(path, side)
        self.task = self.task.without_tensorflow()  # LiteRT needs no TensorFlow: neither do its inputs
        self.format = (artifacts.read_record(path) or {}).get("format", "tflite")
        self.num_threads = num_threads or default_threads()
        self.interpreter = self._new_interpreter()
        self._feed = self.task.tflite_feed(self.preprocessing, side)
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        # a graph written for one input at a time (its batch fixed at 1) runs a batch row by row
        self._one_at_a_time = int(self._inputs[0].get("shape_signature", self._inputs[0]["shape"])[0]) == 1
        self._sized: dict[int, tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]] = {
            int(self._inputs[0]["shape"][0]): (self.interpreter, self._inputs, self._outputs)}

    def _new_interpreter(self, rows: int | None = None) -> Any:
        """An interpreter of the file, its inputs resized to `rows` rows (None: as the file has them)."""
        from ai_edge_litert.interpreter import Interpreter

        from dlpipe.quiet import captured_output

        with captured_output(stdout=False):  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every load
            try:
                interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
            except (ValueError, RuntimeError) as error:  # LiteRT's words for a file it cannot build a model from
                from dlpipe.models.tflite_file import not_a_tflite

                raise not_a_tflite(self.path, str(error).strip().splitlines()[0][:160]) from None
            if rows is not None:
                for detail in self._inputs:
                    interpreter.resize_tensor_input(detail["index"], [rows, *detail["shape"][1:]])
            interpreter.allocate_tensors()
        return interpreter

    def replica(self, num_threads: int) -> "TFLiteRuntime":
        """A second interpreter of the same file: a LiteRT interpreter must not be invoked from two threads."""
        twin = TFLiteRuntime(self.path, self.side, num_threads)
        twin.chosen_because = self.chosen_because
        return twin

    def predict(self, batch: Any) -> np.ndarray:
        arrays = self._feed(batch, self._inputs)
        parts, start, total = [], 0, len(arrays[0])
        while start < total:
            rows = 1 if self._one_at_a_time else self._next_chunk(total - start)
            parts.append(self._invoke([array[start:start + rows] for array in arrays]))
            start += rows
        if not parts:
            return self.task.finish(batch, np.zeros((0,), np.float32))
        joined = [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]
        return self.task.finish(batch, self.task.tflite_output(joined, self._outputs))

    def _next_chunk(self, left: int) -> int:
        """Rows of the next chunk: all that is `left` when an interpreter already allocated holds them with at
        most as many padding rows (building one for a batch's odd tail costs more than that compute), else the
        largest power of two that fits."""
        if left <= self.MAX_CHUNK and self._holding(left) is not None:
            return left
        return _power_of_two_chunks(left, self.MAX_CHUNK)[0]

    def _holding(self, rows: int) -> int | None:
        """The smallest allocated interpreter size that takes `rows` with at most as many padding rows, or None."""
        return min((size for size in self._sized if rows <= size <= 2 * rows), default=None)

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The dequantised outputs of one chunk, on the smallest allocated interpreter that holds it with at most
        as many padding rows (rows are independent), else on a new one allocated for its row count."""
        rows = len(arrays[0])
        size = self._holding(rows)
        if size is None:
            interpreter = self._new_interpreter(rows)
            self._sized[rows] = (interpreter, interpreter.get_input_details(), interpreter.get_output_details())
            size = rows
        interpreter, inputs, outputs = self._sized[size]
        for detail, array in zip(inputs, arrays):
            padded = np.concatenate([array, np.repeat(array[-1:], size - rows, axis=0)]) if size > rows else array
            interpreter.set_tensor(detail["index"], _quantized(padded, detail))
        interpreter.invoke()
        dequantised = []
        for detail in outputs:
            out = interpreter.get_tensor(detail["index"])
            out = out[:rows] if size > rows else out
            scale, zero = detail["quantization"]
            dequantised.append((out.astype(np.float32) - zero) * scale if scale else out)
        return dequantised


class OnnxRuntime(Runtime):
    """onnxruntime on the CPU, fed exactly as the float32 .tflite (the task's TensorFlow-free inputs), so
    predicting through an .onnx never imports TensorFlow. One session runs a whole batch (its batch axis is dynamic)."""

    format = "onnx"

    def __init__(self, path: Path, side: artifacts.SideFiles, num_threads: int | None = None):
        super().__init__(path, side)
        self.task = self.task.without_tensorflow()
        self.num_threads = num_threads or default_threads()
        self.session = onnx_session(path, self.num_threads)
        self._feed = self.task.tflite_feed(self.preprocessing, side)
        self._inputs = [_onnx_detail(i, node) for i, node in enumerate(self.session.get_inputs())]
        self._outputs = [_onnx_detail(i, node) for i, node in enumerate(self.session.get_outputs())]

    def replica(self, num_threads: int) -> "OnnxRuntime":
        """A second session with its own threads, for a server's batch workers (see RuntimePool)."""
        twin = OnnxRuntime(self.path, self.side, num_threads)
        twin.chosen_because = self.chosen_because
        return twin

    def predict(self, batch: Any) -> np.ndarray:
        arrays = self._feed(batch, self._inputs)
        if not len(arrays[0]):
            return self.task.finish(batch, np.zeros((0,), np.float32))
        feeds = {detail["name"]: array.astype(detail["dtype"], copy=False) for detail, array in zip(self._inputs, arrays)}
        outputs = self.session.run([detail["name"] for detail in self._outputs], feeds)
        return self.task.finish(batch, self.task.tflite_output(list(outputs), self._outputs))


_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
               "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def _onnx_detail(index: int, node: Any) -> dict[str, Any]:
    """An onnxruntime input/output as the interpreter details a task's feed reads (name, dtype, shape)."""
    shape = [dim if isinstance(dim, int) else -1 for dim in node.shape]
    return {"name": node.name, "index": index, "dtype": _ONNX_TYPES.get(node.type, np.float32),
            "shape": np.array(shape), "shape_signature": np.array(shape), "quantization": (0.0, 0)}


def onnx_session(path: Path, num_threads: int) -> Any:
    """An onnxruntime CPU session of `path`; a file it cannot read is a DataError naming it."""
    try:
        import onnxruntime
    except ImportError:
        raise DataError(str(path), "running an .onnx needs onnxruntime: pip install onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on every load
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own Fail/InvalidProtobuf exceptions
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise DataError(str(path), f"not an ONNX model onnxruntime can load ({reason}); export it again with "
                                   "dlpipe export --format onnx") from None


def _power_of_two_chunks(rows: int, largest: int) -> list[int]:
    """Row counts that sum to `rows`: as many `largest` as fit, then the binary digits of the rest."""
    chunks = [largest] * (rows // largest)
    rest, size = rows % largest, largest
    while rest:
        while size > rest:
            size //= 2
        chunks.append(size)
        rest -= size
    return chunks


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
    if path.suffix == ".keras" and path.is_file():
        check_archive_file(path)  # a decompression bomb is refused before any import or read of its members
    side = artifacts.read_side_files(path)
    runtime: Runtime
    if path.is_dir():
        runtime = SavedModelRuntime(path, side)
    elif path.suffix == ".keras":
        runtime = KerasRuntime(path, side)
    elif path.suffix == ".tflite":
        runtime = TFLiteRuntime(path, side, num_threads)
    elif path.suffix == ".onnx":
        runtime = OnnxRuntime(path, side, num_threads)
    else:
        raise DataError(str(path), "not a model artifact: expected a run folder, .keras, a SavedModel folder, .tflite "
                                   "or .onnx")
    runtime.chosen_because = why
    return runtime
