"""Run tracking in MLflow (`dlpipe run --track mlflow`, or `train.track: mlflow`): params, metrics, artifacts.

One MLflow run per dlpipe run: the flattened resolved config as params, every epoch's Keras logs as metrics
(step = the epoch counted across phases; a refit's as `refit_<name>`), metrics.json's numbers as `final/<key>`
and the run folder's small files (metrics.json, config.yaml, report.html, plots; the model files only with
`train.track_models: true`) as artifacts. The store is `--track-uri` / `train.track_uri`, else
$MLFLOW_TRACKING_URI, else MLflow's SQLite store beside the run folders: OUT/../mlflow.db, artifacts in
OUT/../mlruns (MLflow's own default, ./mlflow.db, would follow the working directory). OUT/tracking.json keeps the
run's id, so `--resume` continues the same MLflow run. mlflow is imported only when a run is tracked.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator

from dlpipe import atomic
from dlpipe.errors import DlpipeError, clip
from dlpipe.pipelines.config import option

TRACKING_FILE = "tracking.json"
INSTALL_HINT = "pip install 'dlpipe[track]' (or: pip install mlflow-skinny)"
DEFAULT_STORE = "mlflow.db"  # beside the run folders, with the artifacts in mlruns/
SMALL_FILE_BYTES = 10_000_000  # a run folder's files logged as artifacts by default: reports, plots, histories
MODEL_SUFFIXES = (".keras", ".tflite", ".h5", ".onnx", ".task", ".npz", ".bin")
BATCH = 500  # metrics or params per MLflow request (its limits: 1,000 metrics, 100 params)
TRACKERS = ("none", "mlflow")


def track_option() -> Any:
    return option("none", "log the run to MLflow (params, per-epoch metrics, final metrics, artifacts): none or "
                          "mlflow; also `dlpipe run --track mlflow`")


def track_uri_option() -> Any:
    return option(None, "MLflow tracking URI: a server (http://host:5000), sqlite:///FILE.db or a folder; default: "
                        "$MLFLOW_TRACKING_URI, else OUT/../mlflow.db (artifacts in OUT/../mlruns)")


def track_models_option() -> Any:
    return option(False, "with track: also log the exported model files as artifacts (large; off: only reports, "
                         "plots, metrics and the config)")


def store_uri(given: str | None, out_dir: Path) -> str:
    """The tracking URI a run uses: the given one (a bare path ending in .db is SQLite, another a folder store),
    else $MLFLOW_TRACKING_URI, else SQLite beside the run folders."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return "sqlite:///" + str((out_dir.resolve().parent / DEFAULT_STORE))
    if "://" in uri or uri.startswith(("sqlite:", "file:", "databricks")):
        return uri
    path = Path(uri).expanduser().resolve()
    return "sqlite:///" + str(path) if path.suffix == ".db" else path.as_uri()


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a SQLite store (mlruns/), else the store's own choice."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
    return None


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted.key, leaf) for every leaf of nested mappings; lists stay leaves."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def metric_key(key: str) -> str:
    """A name MLflow accepts (letters, digits, _ - . space : /): a class name may hold anything."""
    return re.sub(r"[^\w\-. :/]", "_", key)[:250]


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """metrics.json's numbers as `final/<dotted key>`; an interval [low, high] as `<key>/low`, `<key>/high`."""
    found: dict[str, float] = {}
    for key, value in flatten(metrics):
        if isinstance(value, bool) or key.startswith("min_"):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            found[metric_key(f"final/{key}")] = float(value)
        elif (key.endswith("_interval") and isinstance(value, list) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            found[metric_key(f"final/{key}/low")], found[metric_key(f"final/{key}/high")] = map(float, value)
    return found


def config_params(config_dict: dict[str, Any]) -> dict[str, str]:
    """The flattened resolved config as MLflow params (values cut to MLflow's 6,000 characters)."""
    return {metric_key(key): (json.dumps(value) if isinstance(value, (list, tuple)) else str(value))[:6000]
            for key, value in flatten(config_dict)}


def import_mlflow() -> Any:
    """mlflow, quiet and without usage telemetry; a one-line error with the install command when it is missing."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
    except ImportError as error:
        raise DlpipeError(f"run tracking needs MLflow, which is not installed ({error.name or error}): "
                          f"{INSTALL_HINT}") from None
    for name in ("mlflow", "alembic"):  # table creation and migration notes on every new store
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


class Tracker:
    """One MLflow run of a dlpipe run; `session` opens and closes it. Off until `start` finds tracking asked."""

    def __init__(self, track: str | None, uri: str | None, echo: Callable[[str], None]):
        if track not in (None, *TRACKERS):
            raise DlpipeError(f"--track: unknown tracker '{track}'; choose one of {', '.join(TRACKERS)}")
        self.track, self.uri, self.echo = track, uri, echo
        self.client: Any = None
        self.run_id = ""
        self.out_dir: Path | None = None
        self.models = False
        self.broken = False

    @property
    def on(self) -> bool:
        return self.client is not None

    def start(self, config: Any, out_dir: Path, resume: bool) -> None:
        """Open (or, on resume, reopen) the MLflow run when --track or train.track asks, and log the params."""
        train = config.sections.get("train")
        track = self.track or ("mlflow" if self.uri else getattr(train, "track", "none"))  # a URI asks for it
        if track == "none":
            return
        mlflow = import_mlflow()
        uri = store_uri(self.uri or getattr(train, "track_uri", None), out_dir)
        if uri.startswith("http"):  # a server that is down: fail in seconds, not after minutes of retries
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            self.run_id = self._open_run(config, out_dir, uri, resume)
            self._log_params(config.to_dict())
        except DlpipeError:
            raise
        except Exception as error:  # noqa: BLE001 - MLflow raises its own, requests' and SQLAlchemy's errors
            self.client = None
            raise DlpipeError(f"--track mlflow: cannot use the tracking store {uri}: {_first_line(error)}; start the "
                              "server or pass another --track-uri") from None
        self.out_dir, self.models = out_dir, bool(getattr(train, "track_models", False))
        self.echo(f"tracking: MLflow run {self.run_id} in {uri}")

    def _open_run(self, config: Any, out_dir: Path, uri: str, resume: bool) -> str:
        saved = _read_json(out_dir / TRACKING_FILE)
        if resume and saved and saved.get("tracking_uri") == uri and saved.get("run_id"):
            self.client.update_run(saved["run_id"], status="RUNNING")
            return str(saved["run_id"])
        name = config.pipeline
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(name, artifact_location=artifact_root(uri)))
        tags = {"dlpipe.out_dir": str(out_dir.resolve()), "dlpipe.pipeline": config.pipeline,
                "dlpipe.task": str(config.task or ""), "mlflow.source.name": "dlpipe run"}
        run = self.client.create_run(experiment_id, run_name=out_dir.resolve().name, tags=tags)
        atomic.write_json(out_dir / TRACKING_FILE, {"tracking_uri": uri, "experiment_id": experiment_id,
                                                    "run_id": run.info.run_id})
        return str(run.info.run_id)

    def _log_params(self, config_dict: dict[str, Any]) -> None:
        """Params not logged yet; a value a stage settled later (learning_rate: auto) becomes a `chosen.` tag."""
        from mlflow.entities import Param, RunTag

        logged = self.client.get_run(self.run_id).data.params
        params = config_params(config_dict)
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        changed = [RunTag(f"chosen.{k}", v) for k, v in params.items() if k in logged and logged[k] != v]
        for start in range(0, len(new), 100):
            self.client.log_batch(self.run_id, params=new[start:start + 100])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Numbers at one step; a store failing mid-run costs the tracking, never the training."""
        if not self.on or self.broken:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(metric_key(k), float(v), now, step) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        try:
            for start in range(0, len(metrics), BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[start:start + BATCH])
        except Exception as error:  # noqa: BLE001 - see above
            self.broken = True
            self.echo(f"note: tracking stopped, the store refused metrics: {_first_line(error)}")

    def callbacks(self) -> list[Any]:
        """The Keras callback that logs each epoch; none when tracking is off."""
        if not self.on:
            return []
        from dlpipe.pipelines.tracking_callback import EpochLogger

        return [EpochLogger(self)]

    def finish(self, status: str) -> None:
        """Log metrics.json's numbers and the run folder's files, then close the MLflow run with `status`."""
        if not self.on or self.out_dir is None:
            return
        try:
            metrics = _read_json(self.out_dir / "metrics.json")
            if isinstance(metrics, dict):
                self.log_metrics(final_metrics(metrics))
            config = _read_json_yaml(self.out_dir / "config.yaml")
            if config:
                self._log_params(config)
            for path in artifact_files(self.out_dir, self.models):
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
                else:
                    self.client.log_artifact(self.run_id, str(path))
            self.client.set_terminated(self.run_id, status=status)
        except Exception as error:  # noqa: BLE001 - the run's own outputs are written; only the copy failed
            self.echo(f"note: tracking could not log the run's outputs: {_first_line(error)}")


def artifact_files(out_dir: Path, models: bool) -> list[Path]:
    """The run folder's small top-level files (reports, plots, metrics, config, histories); with `models` also
    the exported model files and folders named in artifacts.json."""
    exported = set((_read_json(out_dir / "artifacts.json") or {}).keys())
    chosen = []
    for path in sorted(out_dir.iterdir()):
        if path.name.startswith(".") or path.name in (TRACKING_FILE,):
            continue
        is_model = path.name in exported or path.suffix in MODEL_SUFFIXES
        if is_model and models and (path.is_file() or path.is_dir()):
            chosen.append(path)
        elif path.is_file() and not is_model and path.stat().st_size <= SMALL_FILE_BYTES:
            chosen.append(path)
    return chosen


class session:  # noqa: N801 - used as `with tracking.session(...)`, like open()
    """Context of one tracked run: the MLflow run ends FINISHED, FAILED or KILLED with the dlpipe run."""

    def __init__(self, track: str | None, uri: str | None, echo: Callable[[str], None]):
        self.tracker = Tracker(track, uri, echo)

    def __enter__(self) -> Tracker:
        return self.tracker

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        status = "FINISHED" if kind is None else "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        self.tracker.finish(status)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_json_yaml(path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return clip(text[0], 300) if text else type(error).__name__
