"""Models and versions found in a model folder, reloaded when a new version appears.

Layout: `ROOT/NAME/VERSION/` (VERSION a number, the newest serves) holding
what `dlpipe run` exports (model.keras, labels.txt, preprocessing.json);
ROOT itself may also be a single run folder, served as NAME=folder name,
version 1. A new version is loaded completely before it replaces the old
one, so requests in flight finish on the model they started with.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from dlpipe.errors import DataError
from dlpipe.serving.loaded_model import LoadedModel

log = logging.getLogger("dlpipe.serving")


def _is_model_folder(path: Path) -> bool:
    return (path / "model.keras").is_file() and (path / "labels.txt").is_file()


def discover(root: Path) -> dict[str, dict[int, Path]]:
    """NAME -> {version: folder} for every servable model under `root`."""
    if _is_model_folder(root):
        return {root.resolve().name: {1: root}}
    found: dict[str, dict[int, Path]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _is_model_folder(model_dir):
            found.setdefault(model_dir.name, {})[1] = model_dir
            continue
        for version_dir in model_dir.iterdir():
            if version_dir.is_dir() and version_dir.name.isdigit() and _is_model_folder(version_dir):
                found.setdefault(model_dir.name, {})[int(version_dir.name)] = version_dir
    return found


class ModelRepository:
    """The newest version of every model under a folder, hot-reloaded by `refresh`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(str(self.root), "model folder does not exist; give a run folder or ROOT/NAME/VERSION/")
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self.refresh()
        if not self._models:
            raise DataError(str(self.root), "no servable model (model.keras + labels.txt) found; export one with dlpipe run")

    def refresh(self) -> list[str]:
        """Load new or newer versions; returns 'name:version' of each model (re)loaded."""
        loaded = []
        for name, versions in discover(self.root).items():
            newest = max(versions)
            current = self._models.get(name)
            if current is not None and current.version >= newest:
                continue
            try:
                model = LoadedModel.load(versions[newest], name, newest)
            except Exception as error:  # a half-copied version must not take the server down
                log.warning("could not load %s version %s: %s", name, newest, error)
                continue
            with self._lock:
                self._models[name] = model
            loaded.append(f"{name}:{newest}")
        return loaded

    def get(self, name: str, version: int | None = None) -> LoadedModel:
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

    def watch(self, interval_seconds: float, stop: threading.Event) -> threading.Thread:
        """Poll for new versions in a daemon thread until `stop` is set."""

        def loop() -> None:
            while not stop.wait(interval_seconds):
                for item in self.refresh():
                    log.info("loaded %s", item)

        thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        thread.start()
        return thread
