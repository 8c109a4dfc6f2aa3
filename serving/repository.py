"""Models and versions found in a model folder, reloaded when a new version appears.

Layout: `ROOT/NAME/VERSION/` (VERSION a number, the newest serves) holding
any artifact `dlpipe run` or `dlpipe export` writes (model.keras,
savedmodel/, model*.tflite, or a SavedModel folder itself) with its side
files; ROOT itself may also be a single run or export folder, or one
artifact file, served as NAME = its name, version 1, or a named model
(coco-detector), served under its name. Which artifact of a
folder serves is `artifacts.choose_artifact`'s choice (`--artifact`). A new
version is loaded completely before it replaces the old one, so requests in
flight finish on the model they started with.

Each model runs on a pool of runtimes (`RuntimePool`: one LiteRT interpreter
per batch thread, the cores split between them) and is batched as its
folder's serving.json says (`artifacts.read_serving_config`), else as the
server's flags say.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.serving.batcher import BatchPolicy

log = logging.getLogger("dlpipe.serving")


@dataclass
class ServedModel:
    """One served version: a runtime (any artifact format, any task) with its name and version."""

    name: str
    version: int
    runtime: Any  # dlpipe.models.runtimes.Runtime
    overrides: dict[str, Any] = field(default_factory=dict)  # the model folder's serving.json
    policy: BatchPolicy | None = None  # set by `configure`
    pool: Any = None  # dlpipe.models.runtimes.RuntimePool, set by `configure`; None: the runtime alone
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def load(cls, source: str | Path, name: str, version: int, artifact: str = "auto") -> "ServedModel":
        from dlpipe.models.runtimes import load_runtime

        runtime = load_runtime(source, artifact)
        return cls(name, version, runtime, artifacts.read_serving_config(runtime.path))

    def configure(self, defaults: BatchPolicy) -> BatchPolicy:
        """This model's batching (its serving.json over the server's `defaults`), and one runtime per batch
        thread; done once, on the first call."""
        if self.policy is None:
            from dlpipe.models.runtimes import RuntimePool

            with self._lock:
                if self.policy is None:
                    policy = replace(defaults, **self.overrides)
                    self.pool = RuntimePool(self.runtime, policy.num_batch_threads)
                    self.policy = policy
        return self.policy

    @property
    def class_names(self) -> list[str]:
        return self.runtime.class_names

    def prepare(self, instance: Any) -> Any:
        """One request instance -> one model input; raises DataError with a clear reason."""
        return self.runtime.task.prepare(instance, self.runtime.preprocessing)

    def predict(self, items: Sequence[Any]) -> np.ndarray:
        """Outputs for prepared items, as one model batch."""
        batch = self.runtime.task.stack(items)
        return (self.pool or self.runtime).predict(batch)

    def describe(self, output: np.ndarray, top_k: int = 1) -> dict[str, Any]:
        return self.runtime.task.answer(output, self.class_names, top_k)

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "task": self.runtime.task.name,
                "artifact": str(self.runtime.path), "format": self.runtime.format, "labels": self.class_names,
                "preprocessing": {"task": self.runtime.task.name, **self.runtime.preprocessing.to_dict()},
                "batching": {**({} if self.policy is None else asdict(self.policy)), "from_serving_json": self.overrides}}


def _is_model(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".tflite", ".keras", ".onnx")
    return bool(artifacts.list_artifacts(path))


def discover(root: Path) -> dict[str, dict[int, Path]]:
    """NAME -> {version: folder or file} for every servable model under `root`."""
    if _is_model(root):
        name = root.stem if root.is_file() else root.resolve().name
        return {name: {1: root}}
    found: dict[str, dict[int, Path]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _is_model(model_dir):
            found.setdefault(model_dir.name, {})[1] = model_dir
            continue
        for version_dir in model_dir.iterdir():
            if version_dir.is_dir() and version_dir.name.isdigit() and _is_model(version_dir):
                found.setdefault(model_dir.name, {})[int(version_dir.name)] = version_dir
    return found


STAMP_MAX_FILES = 1000  # files of a version folder looked at to tell whether it changed since it failed


@dataclass(frozen=True)
class _Failure:
    version: int
    stamp: tuple[tuple[str, int, int, int], ...]  # the version's files when it failed (files_stamp)
    reason: str


def files_stamp(source: str | Path) -> tuple[tuple[str, int, int, int], ...]:
    """(relative path, size, mtime_ns, inode) of a model file, or of the files under a model folder (the first
    STAMP_MAX_FILES, links not followed); () for a named model. Equal stamps: nothing was replaced."""
    root = Path(source)
    if not root.exists():
        return ()
    if root.is_file():
        info = root.stat()
        return ((root.name, info.st_size, info.st_mtime_ns, info.st_ino),)
    stamp: list[tuple[str, int, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file_name in sorted(files):
            path = os.path.join(folder, file_name)
            try:
                info = os.stat(path, follow_symlinks=False)
            except OSError:  # removed while we looked: the next poll sees the change
                continue
            stamp.append((os.path.relpath(path, root), info.st_size, info.st_mtime_ns, info.st_ino))
            if len(stamp) >= STAMP_MAX_FILES:
                return tuple(stamp)
    return tuple(stamp)


class ModelRepository:
    """The newest version of every model under a folder, hot-reloaded by `refresh`."""

    def __init__(self, root: str | Path, artifact: str = "auto"):
        from dlpipe.models.pretrained import NAMED_MODELS

        self.root = Path(root)
        self.artifact = artifact
        # a named model (e.g. coco-detector) is served as itself, version 1
        self.named = str(root) if not self.root.exists() and str(root) in NAMED_MODELS else None
        if not self.root.exists() and self.named is None:
            raise DataError(str(self.root), "does not exist; give a run or export folder, ROOT/NAME/VERSION/, "
                                            "or a .tflite/.keras/.onnx file")
        self._models: dict[str, ServedModel] = {}
        self._failed: dict[str, _Failure] = {}  # NAME -> the newest version that would not load, until it changes
        self._lock = threading.Lock()
        self.errors: list[str] = []  # why the last refresh could not load a model version
        self.refresh()
        if not self._models:
            detail = f" ({self.errors[0]})" if self.errors else ""
            raise DataError(str(self.root), "no servable model (model.keras, savedmodel/, model*.tflite or model.onnx with "
                                            f"labels.txt) found; export one with dlpipe run or dlpipe export{detail}")

    def refresh(self) -> list[str]:
        """Load new or newer versions; returns 'name:version' of each model (re)loaded.

        A version that fails to load is marked failed and tried again only once its files change (size or
        mtime), so a bad file (a decompression bomb, a half-copied version) costs one attempt and one log line,
        not one per poll."""
        errors, loaded = [], []
        found = {self.named: {1: self.named}} if self.named else discover(self.root)
        for name, versions in found.items():
            newest = max(versions)
            current = self._models.get(name)
            if current is not None and current.version >= newest:
                continue
            stamp = files_stamp(versions[newest])
            failed = self._failed.get(name)
            if failed is not None and failed.version == newest and failed.stamp == stamp:
                errors.append(failed.reason)
                continue
            try:
                model = ServedModel.load(versions[newest], name, newest, self.artifact)
            except Exception as error:  # a half-copied version must not take the server down
                log.warning("could not load %s version %s (not retried until its files change): %s",
                            name, newest, error)
                self._failed[name] = _Failure(newest, stamp, f"{name} version {newest}: {error}")
                errors.append(self._failed[name].reason)
                continue
            self._failed.pop(name, None)
            with self._lock:
                self._models[name] = model
            log.info("loaded %s version %s: %s, chosen: %s", name, newest, model.runtime.path, model.runtime.chosen_because)
            loaded.append(f"{name}:{newest}")
        self.errors = errors
        return loaded

    def get(self, name: str, version: int | None = None) -> ServedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise KeyError(f"model '{name}' not found; serving: {', '.join(sorted(self._models))}")
        if version is not None and version != model.version:
            raise KeyError(f"model '{name}' version {version} is not loaded; serving version {model.version}")
        return model

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def models(self) -> list[ServedModel]:
        with self._lock:
            return [self._models[name] for name in sorted(self._models)]

    def watch(self, interval_seconds: float, stop: threading.Event) -> threading.Thread:
        """Poll for new versions in a daemon thread until `stop` is set."""

        def loop() -> None:
            while not stop.wait(interval_seconds):
                self.refresh()

        thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        thread.start()
        return thread
