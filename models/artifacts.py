"""The artifact layer: a model file or folder plus the one bundle of side files that travels with it.

Side files, written here and nowhere else:
  labels.txt          one class per line, in output order
  preprocessing.json  the task and what happened to an input before the model (`"task": "image"`, ...)
  extra files         what the task needs to feed the model (a tokenizer vocabulary)
  artifacts.json      one record per artifact: format, provenance (dlpipe version, source run, config
                      hash) and the parity against the Keras model measured at export, with its speed
  serving.json        optional: how `dlpipe serve` batches this model (`write_serving_config`)
A folder artifact (SavedModel) holds its side files inside, a file artifact (.keras, .tflite) beside
it; a .tflite also carries them embedded as metadata buffers, so the file alone is enough, and the
standard TFLite Metadata that MediaPipe Tasks read (`tflite_bytes`: labels, tokenizer, preprocessing.json).
Every write is atomic (`dlpipe.atomic`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dlpipe import __version__, atomic
from dlpipe.errors import DataError
from dlpipe.models.archive_limits import check_archive_file

LABELS_FILE = "labels.txt"
PREPROCESSING_FILE = "preprocessing.json"
MANIFEST_FILE = "artifacts.json"
SERVING_FILE = "serving.json"
# serving.json keys -> their type: the server's batching settings for one model (see serving/batcher.py)
SERVING_KEYS = {"max_batch_size": int, "max_wait_ms": float, "num_batch_threads": int}
KERAS_FILE = "model.keras"
SAVEDMODEL_DIR = "savedmodel"
# names of the metadata buffers a dlpipe .tflite carries (the interpreter ignores them)
EMBEDDED_LABELS = "dlpipe_labels"
EMBEDDED_PREPROCESSING = "dlpipe_preprocessing"
EMBEDDED_FILE_PREFIX = "dlpipe_file:"
# artifact kinds `choose_artifact` knows, by what a user calls them (`--artifact`)
TFLITE_VARIANTS = {"float32": "model.tflite", "float16": "model_float16.tflite", "dynamic": "model_dynamic.tflite",
                   "int8": "model_int8.tflite"}
ONNX_FILE = "model.onnx"
CHOICES = ("auto", "keras", "savedmodel", *TFLITE_VARIANTS, "onnx")
# the licence field of a .tflite's standard metadata: the model's, which dlpipe cannot know
METADATA_LICENSE = "Not set by dlpipe: the terms of the training data and of the pretrained weights apply"
PARITY_TOLERANCE = 0.01  # accuracy (or top-1 agreement) an export may lose against Keras and still be chosen by auto


@dataclass
class Bundle:
    """What travels with every artifact of one model."""

    task: str
    class_names: list[str]
    preprocessing: Any  # the task's preprocessing dataclass (has to_dict)
    extra_files: dict[str, Path] = field(default_factory=dict)  # file name -> source path (e.g. vocab.txt)
    provenance: dict[str, Any] = field(default_factory=dict)  # source run, config hash, ...

    def preprocessing_dict(self) -> dict[str, Any]:
        return {"task": self.task, **self.preprocessing.to_dict()}


@dataclass
class SideFiles:
    """The side files of one artifact as read back: from beside it, or embedded in a .tflite."""

    folder: Path
    task: str
    class_names: list[str]
    preprocessing: dict[str, Any]
    embedded: dict[str, bytes] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """Path of an extra file (e.g. the vocabulary): beside the artifact, else extracted from the .tflite."""
        path = self.folder / name
        if path.is_file():
            return path
        if name in self.embedded:
            return _extracted(name, self.embedded[name])
        raise DataError(str(path), f"{name} is missing beside the model; export the model again with dlpipe export")


def _extracted(name: str, contents: bytes) -> Path:
    """A file packed in a .tflite, written once per distinct content under the temp folder and reused after."""
    digest = hashlib.sha256(contents).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "dlpipe-embedded" / digest / name
    if not (path.is_file() and path.read_bytes() == contents):
        path.parent.mkdir(parents=True, exist_ok=True)
        # a unique temporary name: several threads of a server may extract the same file at once
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".partial-", delete=False) as handle:
            handle.write(contents)
        os.replace(handle.name, path)
    return path


def side_folder(artifact: str | Path) -> Path:
    """Where an artifact's side files live: inside a folder artifact, beside a file artifact."""
    artifact = Path(artifact)
    return artifact if artifact.is_dir() else artifact.parent


def record_key(artifact: str | Path) -> str:
    artifact = Path(artifact)
    return "." if artifact.is_dir() else artifact.name


def write_side_files(folder: str | Path, bundle: Bundle) -> None:
    """labels.txt, preprocessing.json and the extra files into `folder` (before the artifact lands there)."""
    folder = Path(folder)
    atomic.write_text(folder / LABELS_FILE, "".join(f"{name}\n" for name in bundle.class_names))
    atomic.write_json(folder / PREPROCESSING_FILE, bundle.preprocessing_dict())
    for name, source in bundle.extra_files.items():
        target = folder / name
        if Path(source).resolve() != target.resolve():
            with atomic.replacing_file(target) as tmp:
                tmp.write_bytes(Path(source).read_bytes())


def write_record(artifact: str | Path, fmt: str, bundle: Bundle, parity: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add the artifact's record (format, provenance, parity) to artifacts.json beside or inside it."""
    manifest_path = side_folder(artifact) / MANIFEST_FILE
    manifest = _read_json(manifest_path) if manifest_path.is_file() else {}
    record = {"format": fmt, "task": bundle.task, "dlpipe_version": __version__,
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **bundle.provenance}
    if parity is not None:
        record["parity"] = parity
    manifest[record_key(artifact)] = record
    atomic.write_json(manifest_path, manifest)
    return record


def write_serving_config(folder: str | Path, **settings: Any) -> Path:
    """serving.json in a model folder: this model's batching settings, overriding the server's flags."""
    config = _checked_serving_config(Path(folder) / SERVING_FILE, settings)
    atomic.write_json(Path(folder) / SERVING_FILE, config)
    return Path(folder) / SERVING_FILE


def read_serving_config(artifact: str | Path) -> dict[str, Any]:
    """The batching settings in serving.json beside (or inside) an artifact; {} when there is none."""
    path = side_folder(artifact) / SERVING_FILE
    return _checked_serving_config(path, _read_json(path)) if path.is_file() else {}


def _checked_serving_config(path: Path, settings: Any) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise DataError(str(path), f"must be a JSON object with keys {', '.join(SERVING_KEYS)}")
    unknown = sorted(set(settings) - set(SERVING_KEYS))
    if unknown:
        raise DataError(str(path), f"unknown key(s) {', '.join(unknown)}; known: {', '.join(SERVING_KEYS)}")
    checked = {}
    for key, value in settings.items():
        kind = SERVING_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise DataError(str(path), f"{key} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
        if value < (0 if key == "max_wait_ms" else 1):
            raise DataError(str(path), f"{key} must be at least {0 if key == 'max_wait_ms' else 1}, got {value!r}")
        checked[key] = kind(value)
    return checked


def read_record(artifact: str | Path) -> dict[str, Any] | None:
    """The artifact's record in artifacts.json, or None (an artifact written before records existed)."""
    manifest_path = side_folder(artifact) / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    return _read_json(manifest_path).get(record_key(artifact))


def embed_in_tflite(flatbuffer: bytes, bundle: Bundle) -> bytes:
    """The .tflite bytes with labels, preprocessing and extra files embedded as named metadata buffers."""
    buffers = {EMBEDDED_LABELS: "".join(f"{name}\n" for name in bundle.class_names).encode("utf-8"),
               EMBEDDED_PREPROCESSING: json.dumps(bundle.preprocessing_dict()).encode("utf-8")}
    for name, source in bundle.extra_files.items():
        buffers[EMBEDDED_FILE_PREFIX + name] = Path(source).read_bytes()
    return _with_metadata(flatbuffer, buffers)


StandardMetadata = Callable[..., bytes]  # a models.tflite_metadata writer with its task's arguments bound


def tflite_bytes(flatbuffer: bytes, bundle: Bundle, standard: StandardMetadata | None = None,
                 description: str | None = None) -> bytes:
    """Everything a dlpipe .tflite carries, assembled in this one place.

    dlpipe's own named buffers (`embed_in_tflite`, what dlpipe's runtime reads), then, given
    `standard` (e.g. `functools.partial(tflite_metadata.image_classifier_metadata, mean=[0], std=[1])`,
    chosen by the task's exporter), the standard TFLite Metadata MediaPipe Tasks read: name,
    description, version, author and licence, the labels, and preprocessing.json as an extra
    associated file. `standard` is called as standard(flatbuffer, labels, name=..., ..., extra_files=...).
    """
    embedded = embed_in_tflite(flatbuffer, bundle)
    if standard is None:
        return embedded
    run = bundle.provenance.get("source_run")
    info: dict[str, Any] = {"name": f"dlpipe {bundle.task} classifier" + (f" ({Path(run).name})" if run else ""),
                            "version": f"dlpipe {__version__}", "author": "dlpipe", "license": METADATA_LICENSE,
                            "extra_files": {PREPROCESSING_FILE: json.dumps(bundle.preprocessing_dict()).encode("utf-8")}}
    if description:
        info["description"] = description
    return standard(embedded, list(bundle.class_names), **info)


def embedded_in_tflite(path: str | Path) -> dict[str, bytes]:
    """Every named metadata buffer of a .tflite file (name -> bytes), read without TensorFlow; a truncated or
    random file is a DataError naming it (see `tflite_file`)."""
    from dlpipe.models.tflite_file import metadata_buffers

    return metadata_buffers(path)


def embedded_in_onnx(path: str | Path) -> dict[str, str]:
    """The metadata_props of an .onnx file (dlpipe's exports carry labels and preprocessing.json there)."""
    from dlpipe.models.runtimes import onnx_session

    return dict(onnx_session(Path(path), 1).get_modelmeta().custom_metadata_map)


def read_side_files(artifact: str | Path) -> SideFiles:
    """Labels, preprocessing and extra files of an artifact; a .tflite without files beside it uses its own."""
    artifact = Path(artifact)
    folder = side_folder(artifact)
    labels, preprocessing = folder / LABELS_FILE, folder / PREPROCESSING_FILE
    embedded: dict[str, bytes] = {}
    if artifact.suffix == ".tflite" and artifact.is_file():
        buffers = embedded_in_tflite(artifact)
        embedded = {name[len(EMBEDDED_FILE_PREFIX):]: data for name, data in buffers.items()
                    if name.startswith(EMBEDDED_FILE_PREFIX)}
        if not (labels.is_file() and preprocessing.is_file()) and EMBEDDED_LABELS in buffers:
            prep = json.loads(buffers.get(EMBEDDED_PREPROCESSING, b"{}").decode("utf-8"))
            return SideFiles(folder, _task_name(prep), buffers[EMBEDDED_LABELS].decode("utf-8").splitlines(), prep, embedded)
    if artifact.suffix == ".onnx" and artifact.is_file() and not (labels.is_file() and preprocessing.is_file()):
        props = embedded_in_onnx(artifact)
        if EMBEDDED_LABELS in props:
            prep = json.loads(props.get(EMBEDDED_PREPROCESSING, "{}"))
            return SideFiles(folder, _task_name(prep), props[EMBEDDED_LABELS].splitlines(), prep, {})
    if not labels.is_file():
        raise DataError(str(labels), "labels file missing; export the model again with dlpipe export")
    if not preprocessing.is_file():
        raise DataError(str(preprocessing), "preprocessing description missing; export the model again with dlpipe export")
    prep = _read_json(preprocessing)
    names = [line for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    return SideFiles(folder, _task_name(prep), names, prep, embedded)


def _task_name(preprocessing: dict[str, Any]) -> str:
    # "kind" is what artifacts exported before task objects existed call it
    return str(preprocessing.get("task", preprocessing.get("kind", "image")))


def list_artifacts(folder: str | Path) -> dict[str, Path]:
    """The artifacts in a run or export folder, by the name `--artifact` gives them."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    if (folder / KERAS_FILE).is_file():
        found["keras"] = folder / KERAS_FILE
    for candidate in (folder / SAVEDMODEL_DIR, folder):
        if (candidate / "saved_model.pb").is_file():
            found["savedmodel"] = candidate
            break
    for name, file_name in TFLITE_VARIANTS.items():
        if (folder / file_name).is_file():
            found[name] = folder / file_name
    if (folder / ONNX_FILE).is_file():
        found["onnx"] = folder / ONNX_FILE
    return found


def choose_artifact(source: str | Path, preference: str = "auto") -> tuple[Path, str]:
    """(artifact path, why it was chosen) for a run folder, an export folder or an artifact path.

    auto: the fastest artifact whose parity measured at export is within
    PARITY_TOLERANCE of the Keras model (accuracy on the labelled sample, or
    top-1 agreement); the Keras model itself when nothing else qualifies. An
    unchecked export (no parity record, or parity null: nothing was compared)
    is never chosen over the Keras model or a checked one; only when a folder
    holds neither does one run, and `why` says it is unchecked.
    """
    source = Path(source)
    if preference not in CHOICES:
        raise DataError(str(source), f"unknown artifact '{preference}'; choose one of {', '.join(CHOICES)}")
    if source.is_file() or (source.is_dir() and (source / "saved_model.pb").is_file()):
        return source, "given"
    if not source.exists():
        raise DataError(str(source), "does not exist; give a run folder, a .keras file, a SavedModel folder or a .tflite file")
    found = list_artifacts(source)
    if not found:
        raise DataError(str(source), "holds no model artifact (model.keras, savedmodel/, model*.tflite or model.onnx); "
                                     "train one with dlpipe run or export one with dlpipe export")
    if preference != "auto":
        if preference not in found:
            raise DataError(str(source), f"has no {preference} artifact (it has: {', '.join(found)}); "
                                         f"write it with dlpipe export or choose another --artifact")
        return found[preference], preference
    candidates, refused = [], []
    for name, path in found.items():
        record = read_record(path) or {}
        parity = record.get("parity") or {}
        seconds = parity.get("seconds_per_item")
        if name != "keras" and (seconds is None or not parity_ok(parity)):
            refused.append(f"{name} {parity_state(parity)}")
            continue
        candidates.append((seconds if seconds is not None else float("inf"), name, path))
    if not candidates:  # no Keras model and no export checked faithful: run one, saying it is not checked
        name, path = next(iter(found.items()))
        return path, f"{name}, unchecked: no artifact here is checked against the Keras model ({', '.join(refused)})"
    seconds, name, path = min(candidates, key=lambda item: item[0])
    speed = f", {seconds * 1000:.2f} ms per input at export" if seconds != float("inf") else ""
    return path, f"{name} (fastest within {PARITY_TOLERANCE:.0%} of the Keras model{speed})"


def parity_state(parity: dict[str, Any] | None) -> str:
    """'faithful', 'unfaithful' (outside the tolerance) or 'unchecked' (no record, or nothing compared: null)."""
    parity = parity or {}
    scored = [key for key in parity if f"reference_{key}" in parity]
    compared = parity.get("top1_agreement") is not None or any(
        parity[key] is not None and parity[f"reference_{key}"] is not None for key in scored)
    if not compared:
        return "unchecked"
    return "faithful" if parity_ok(parity) else "unfaithful"


def parity_ok(parity: dict[str, Any]) -> bool:
    """True when an export is as good as the Keras model on the export-time sample, within the tolerance."""
    scored = [key for key in parity if f"reference_{key}" in parity]  # e.g. accuracy, micro_f1: the task's headline
    if scored and all(parity[key] is not None and parity[f"reference_{key}"] is not None for key in scored):
        return all(parity[f"reference_{key}"] - parity[key] <= PARITY_TOLERANCE for key in scored)
    agreement = parity.get("top1_agreement")  # None: nothing was compared, so the artifact is unchecked
    return agreement is not None and agreement >= 1.0 - PARITY_TOLERANCE


def save_keras(model: Any, path: str | Path) -> Path:
    """Save a `.keras` file; a crash mid-write leaves any previous file intact."""
    path = Path(path)
    with atomic.replacing_file(path) as tmp:
        model.save(tmp)
    return path


def load_keras(path: str | Path) -> Any:
    """A `.keras` file of any dlpipe model (its custom layers are registered on import); its zip is checked
    against the archive limits (models.archive_limits) before Keras reads a byte of it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "model file does not exist")
    check_archive_file(path)
    import keras

    from dlpipe.models import bert_layers, layers, text_layers  # noqa: F401  (register the custom layers)
    from dlpipe.models.keras_saving import cache_skipsets
    from dlpipe.models.tasks import TASKS

    cache_skipsets()
    for name in TASKS:  # a task's own layers (e.g. multi-label thresholds), registered where the task lives
        TASKS.get(name).register_layers()

    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError) as error:
        if "safe_mode" in str(error) and read_record(path) is not None:
            # a model dlpipe wrote itself around a TF-Hub SavedModel (TFSMLayer), which Keras will not
            # reload in safe mode; its artifacts.json record says dlpipe exported it
            return keras.saving.load_model(path, compile=False, safe_mode=False)
        raise DataError(str(path), f"cannot load this .keras file ({error})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(str(path), f"not valid JSON ({error}); export the model again with dlpipe export") from None


def _with_metadata(flatbuffer: bytes, buffers: dict[str, bytes]) -> bytes:
    """Add named byte buffers as TFLite metadata entries (the interpreter ignores them)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    entries = list(model.metadata or [])
    for name, data in buffers.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        entries.append(entry)
    model.metadata = entries
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
