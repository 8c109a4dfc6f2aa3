"""Export formats, registered per task in one registry, and the one `export` function that writes them.

A format is written by the exporter registered for (task, format), or
refused with the reason registered for it (e.g. full-integer int8 for text).
`export` writes the artifact and its side files atomically through
`dlpipe.models.artifacts`, then loads the written artifact back with the
runtime every consumer uses and records its parity against the Keras model
(top-1 agreement, largest output difference, accuracy on a labelled sample,
speed), which `choose_artifact` reads to pick the fastest faithful artifact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe import atomic
from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts
from dlpipe.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    """A deployable format: its name (config and CLI), the file or folder it writes, what it is for."""

    name: str
    target: str
    description: str
    folder: bool = False  # written as a folder, its side files inside (savedmodel, web)


FORMATS: dict[str, ExportFormat] = {fmt.name: fmt for fmt in (
    ExportFormat("keras", artifacts.KERAS_FILE, "Keras 3 model file: reload, fine-tune further, or serve"),
    ExportFormat("savedmodel", artifacts.SAVEDMODEL_DIR, "TensorFlow SavedModel for TF Serving and GPU servers; "
                 "takes raw inputs (encoded image bytes, strings)", folder=True),
    ExportFormat("tflite", artifacts.TFLITE_VARIANTS["float32"], "TFLite float32 for phones and boards (LiteRT)"),
    ExportFormat("tflite-float16", artifacts.TFLITE_VARIANTS["float16"], "TFLite with float16 weights: half the size"),
    ExportFormat("tflite-dynamic", artifacts.TFLITE_VARIANTS["dynamic"],
                 "TFLite with int8 weights and float compute: about a quarter of the size"),
    ExportFormat("tflite-int8", artifacts.TFLITE_VARIANTS["int8"],
                 "TFLite full-integer (uint8 in/out), calibrated on training inputs: smallest and fastest on CPUs"),
    ExportFormat("web", "web", "a static folder for the browser: the float32 .tflite, a page and MediaPipe Tasks' "
                 "web files (fetched from npm at set-up), classifying in the page", folder=True),
    ExportFormat("onnx", artifacts.ONNX_FILE, "ONNX (converted by tf2onnx) for onnxruntime and the servers that "
                 "run it; takes what the float32 .tflite takes (pixels, token ids)"),
)}


@dataclass
class ExportRequest:
    """What an exporter gets besides the model: the side-file bundle and data to calibrate and check with."""

    bundle: artifacts.Bundle
    calibration: Sequence[Any] = ()  # raw training inputs (paths, texts) for full-integer calibration
    sample: Any = None  # a model batch for the parity check (None: no check)
    sample_labels: Sequence[str] | None = None  # its label names, to compare accuracies


Exporter = Callable[[Any, Path, ExportRequest, str], None]  # (Keras model, temporary target path, request, format)


@dataclass(frozen=True)
class Refusal:
    """A format a task cannot be exported to, and why."""

    reason: str


_EXPORTERS: dict[str, Registry[Exporter | Refusal]] = {}  # task -> its formats' exporters and refusals


def register(task: str, *formats: str) -> Callable[[Exporter], Exporter]:
    """Decorator: `@register("image", "tflite", "tflite-int8")` above an exporter function."""

    def decorate(exporter: Exporter) -> Exporter:
        for fmt in formats:
            _add(task, fmt, exporter)
        return exporter

    return decorate


def refuse(task: str, fmt: str, reason: str) -> None:
    """Record that `task` cannot be exported to `fmt`, and why (the error a user gets)."""
    _add(task, fmt, Refusal(reason))


def _add(task: str, fmt: str, entry: Exporter | Refusal) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; known: {', '.join(FORMATS)}")
    _EXPORTERS.setdefault(task, Registry(f"{task} export format")).add(fmt, entry)  # a second entry is refused


def _entry(task: str, fmt: str) -> Exporter | Refusal | None:
    """What is registered for (task, format), or None."""
    formats = _EXPORTERS.get(task)
    return formats.get(fmt) if formats is not None and fmt in formats else None


def support(task: str) -> dict[str, str | None]:
    """format -> None (supported) or the reason it is refused, for every format."""
    _load_exporters(task)
    out: dict[str, str | None] = {}
    for fmt in FORMATS:
        entry = _entry(task, fmt)
        out[fmt] = entry.reason if isinstance(entry, Refusal) else (None if entry else f"no {fmt} exporter for task '{task}'")
    return out


def export(model: Any, fmt: str, out_dir: str | Path, request: ExportRequest) -> Path:
    """Write `model` in format `fmt` under `out_dir` with its side files; returns the artifact written."""
    _load_exporters(request.bundle.task)
    if fmt not in FORMATS:
        raise DlpipeError(f"export: unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    entry = _entry(request.bundle.task, fmt)
    if entry is None or isinstance(entry, Refusal):
        reason = entry.reason if entry else f"no exporter is registered for task '{request.bundle.task}'"
        raise DlpipeError(f"export: {fmt} is not available for {request.bundle.task} models: {reason}")
    target = Path(out_dir) / FORMATS[fmt].target
    with scratch_space(target.parent):
        if FORMATS[fmt].folder:
            with atomic.replacing_dir(target) as tmp, disk_full_told(target.parent, fmt):
                entry(model, tmp, request, fmt)
                artifacts.write_side_files(tmp, request.bundle)
        else:
            with atomic.replacing_file(target) as tmp, disk_full_told(target.parent, fmt):
                entry(model, tmp, request, fmt)
                artifacts.write_side_files(target.parent, request.bundle)
    artifacts.write_record(target, fmt, request.bundle)  # before loading it back: it says dlpipe wrote it
    if request.sample is not None:
        artifacts.write_record(target, fmt, request.bundle, measure_parity(model, target, request))
    return target


SCRATCH_DIR = ".dlpipe-scratch"
_SCRATCH_IN_USE: list[Path] = []  # the scratch folder of the outermost scratch_space block (tempfile's is global too)
LOW_SPACE_BYTES = 16 * 2 ** 20  # a failed export with less free than this on its disk is told as a full disk


@contextlib.contextmanager
def disk_full_told(folder: Path, fmt: str) -> Iterator[None]:
    """Turn a full disk during an export into one DataError, even when a converter hid the write error.

    TensorFlow's TFLite converter catches its failed SavedModel write and falls back to a legacy path
    that fails with "TypeError: 'NoneType' object is not callable"; so, besides the errno, the free
    space is read at the moment of failure, before the partial files are removed.
    """
    from dlpipe.errors import DataError
    from dlpipe.system_errors import FULL_DISK_CODES, error_code

    try:
        yield
    except DlpipeError:
        raise
    except Exception as error:
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(folder).free
            if error_code(error) in FULL_DISK_CODES or free < LOW_SPACE_BYTES:
                raise DataError(str(folder), f"no space left on the device ({free / 2 ** 20:.1f} MB free) while "
                                             f"writing the {fmt} export; free some space or export to another disk "
                                             "(--out)") from error
        raise


@contextlib.contextmanager
def scratch_space(folder: Path) -> Iterator[Path]:
    """Point Python's temp files (the TFLite converter saves a whole SavedModel there) at OUT/.dlpipe-scratch/PID.

    A killed export used to leave up to tens of MB in the system temp folder; here what a dead
    process left is removed by the next export into the same folder, and this one's on the way out.
    Inside another block the outer one's folder is used, and removed when that block ends: what several
    exports share (tflite_source's SavedModel) stays until all of them are done.
    """
    if _SCRATCH_IN_USE:
        yield _SCRATCH_IN_USE[-1]
        return
    root = folder / SCRATCH_DIR
    if root.is_dir():
        for leftover in root.iterdir():
            if not (leftover.name.isdigit() and _alive(int(leftover.name))):
                shutil.rmtree(leftover, ignore_errors=True)
    mine = root / str(os.getpid())
    mine.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(mine)
    _SCRATCH_IN_USE.append(mine)
    try:
        yield mine
    finally:
        _SCRATCH_IN_USE.pop()
        tempfile.tempdir = previous
        shutil.rmtree(mine, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.rmdir()


def _alive(pid: int) -> bool:
    """True when `pid` is a running process (on Linux not merely a thread id, which shares the numbers)."""
    status = Path(f"/proc/{pid}/status")
    if Path("/proc/self/status").exists():
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            return False
        return fields.get("Tgid", "").strip() == str(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def measure_parity(model: Any, artifact: Path, request: ExportRequest) -> dict[str, Any]:
    """Outputs of the written artifact vs the Keras model on the request's sample, and its time per input."""
    from dlpipe.models.runtimes import KerasRuntime, load_runtime

    reference_runtime = KerasRuntime.from_model(model, artifacts.read_side_files(artifact), artifact)
    # a .keras file is the model in memory, saved: time that model rather than load it all again
    runtime = reference_runtime if artifact.suffix == ".keras" else load_runtime(artifact)
    reference, seconds = _timed(reference_runtime.predict, request.sample)
    if runtime is not reference_runtime:
        outputs, seconds = _timed(runtime.predict, request.sample)
    else:
        outputs = reference
    task = runtime.task
    parity: dict[str, Any] = {**task.parity(reference, outputs), "seconds_per_item": seconds / max(len(outputs), 1)}
    if request.sample_labels is not None:
        names, metric = runtime.class_names, task.headline_metric
        parity[metric] = task.score(request.sample_labels, outputs, names)[metric]
        parity[f"reference_{metric}"] = task.score(request.sample_labels, reference, names)[metric]
    return parity


def _timed(predict: Callable[[Any], np.ndarray], batch: Any, repeats: int = 2) -> tuple[np.ndarray, float]:
    """Outputs and the faster of `repeats` timed calls: on a shared machine the minimum is what the format costs."""
    outputs = np.asarray(predict(batch))  # warm up: the first call builds kernels and allocates tensors
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - started)
    return outputs, best


def _load_exporters(task: str) -> None:
    """Import the module that registers the task's exporters (kept lazy: exporters import TensorFlow)."""
    import importlib

    from dlpipe.models.tasks import get_task

    importlib.import_module(get_task(task).exporters_module)
