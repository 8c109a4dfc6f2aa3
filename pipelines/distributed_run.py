"""`dlpipe run` as one of several training workers: a non-chief worker's run, and the whole run as a Ray Train job.

Every worker of a multi-worker run (`train.distribute: multi_worker`) runs the
same pipeline; only the chief owns and writes `--out`. Another worker trains in
a temporary folder seeded with the chief's config and checkpoints (so a resumed
cluster restores one backup, the chief's), stops after training and deletes it.

`--engine ray --workers N` runs the same command as a Ray Train job
(`ray.train.tensorflow.TensorflowTrainer`, which sets TF_CONFIG for each
worker); when a worker dies Ray restarts the group, which resumes from the last
backup instead of starting again. The workers must share the `--out` folder's
file system (one machine, or a shared mount).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from dlpipe.errors import DlpipeError, RunStateError
from dlpipe.pipelines.engine import CONFIG_FILE, REPORT_FILE

RAY_MAX_FAILURES = 3  # group restarts after a worker dies, each resuming from the last backup


def is_worker() -> bool:
    """Whether TF_CONFIG names this process a worker other than the chief of a multi-worker cluster."""
    from dlpipe.pipelines.training.distribute import cluster_from_env

    cluster = cluster_from_env()
    return cluster is not None and not cluster.chief


def run_as_worker(spec: Any, out_dir: Path, data: str | None, config_file: str | Path | None, sets: Iterable[str],
                  resume: bool, echo: Callable[[str], None], callbacks: Iterable[Any]) -> Any:
    """Train as a non-chief worker in a temporary folder; the chief's `out_dir` is only read (on --resume)."""
    from dlpipe.pipelines.api import RunResult, resolve_config
    from dlpipe.pipelines.config import load_yaml, resolve
    from dlpipe.pipelines.engine import run_pipeline
    from dlpipe.pipelines.training.distribute import worker_folder

    folder = worker_folder(out_dir, resume)
    try:
        saved = folder / CONFIG_FILE
        if resume and not saved.is_file():
            raise RunStateError(f"{out_dir}: no run to resume (no {CONFIG_FILE}); start one without --resume")
        if resume:
            config = resolve(spec.name, spec.stage_configs(), [(str(saved), load_yaml(saved))], task=spec.task)
        else:
            config = resolve_config(spec.name, config_file, sets, data)
        echo(f"worker (not the chief): training in {folder}; {out_dir} is the chief's")
        ctx = run_pipeline(spec, config, folder, resume=resume and (folder / REPORT_FILE).is_file(), echo=echo,
                           callbacks=callbacks)
        return RunResult(out_dir=out_dir, config=config, metrics=ctx.metrics, artifacts=ctx.artifacts,
                         report=ctx.report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _train_loop(job: dict[str, Any]) -> None:
    """One Ray Train worker: `dlpipe run` with train.distribute=multi_worker (TF_CONFIG is Ray's)."""
    from dlpipe.pipelines import api

    out = Path(job["out"])
    # a restarted group (a worker died) continues the run the chief began; the first start is fresh
    resume = job["resume"] or (out / CONFIG_FILE).is_file()
    echo = print if job["verbose"] else (lambda _line: None)
    if resume:
        api.run(job["pipeline"], out=out, resume=True, echo=echo, callbacks=job["callbacks"])
    else:
        api.run(job["pipeline"], data=job["data"], out=out, config_file=job["config_file"],
                sets=[*job["sets"], "train.distribute=multi_worker"], echo=echo, callbacks=job["callbacks"])


def run_on_ray(pipeline: str, data: str | None, out: str | Path, config_file: str | None, sets: Iterable[str],
               resume: bool, workers: int, address: str | None, echo: Callable[[str], None] = print,
               cpus_per_worker: float = 1.0, callbacks: Iterable[Any] = ()) -> Path:
    """Run the pipeline's training as a Ray Train job of `workers` TensorFlow workers; returns the run folder.

    `callbacks` (Keras callbacks, pickled to every worker) join each worker's fit, as `api.run`'s do."""
    import tempfile

    out_dir = Path(out).absolute()
    if not resume and (out_dir / CONFIG_FILE).is_file():
        raise RunStateError(f"{out_dir} already holds a run; pass --resume to continue it, or another --out")
    if resume and not (out_dir / CONFIG_FILE).is_file():
        raise RunStateError(f"{out_dir}: no run to resume (no {CONFIG_FILE}); start one without --resume")
    if resume and _saved_distribute(out_dir) not in ("multi_worker", "auto"):
        raise RunStateError(f"{out_dir} was trained in one process (train.distribute is not multi_worker); "
                            "continue it with `dlpipe run --resume` without --engine ray")
    try:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
        from ray.train.tensorflow import TensorflowTrainer
    except ImportError as error:
        raise DlpipeError(f"--engine ray needs Ray Train ({error}): pip install 'dlpipe[ray]'") from None

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    job = {"pipeline": pipeline, "data": str(Path(data).absolute()) if data else None, "out": str(out_dir),
           "config_file": str(Path(config_file).absolute()) if config_file else None, "sets": list(sets),
           "resume": resume, "verbose": False, "callbacks": list(callbacks)}
    gpus = ray.cluster_resources().get("GPU", 0)  # one GPU per worker when the cluster has them
    echo(f"ray: {workers} workers (MultiWorkerMirroredStrategy through Ray Train), run folder {out_dir}")
    with tempfile.TemporaryDirectory(prefix="dlpipe-ray-") as storage:  # Ray Train's own files, not the run's
        trainer = TensorflowTrainer(
            _train_loop, train_loop_config=job,
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus >= workers,
                                         resources_per_worker={"CPU": cpus_per_worker}),
            run_config=RunConfig(name="dlpipe", storage_path=storage,
                                 failure_config=FailureConfig(max_failures=RAY_MAX_FAILURES)))
        try:
            error = trainer.fit().error
        except TrainingFailedError as failed:  # Ray Train 2.x raises once the restarts are spent
            error = failed
    if error is not None:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise RunStateError(f"{out_dir}: the Ray training job failed ({first}); fix the cause and continue with "
                            "--engine ray --resume")
    return out_dir


def _saved_distribute(out_dir: Path) -> str:
    """train.distribute in a run folder's config.yaml (none when unset)."""
    from dlpipe.pipelines.config import load_yaml

    train = (load_yaml(out_dir / CONFIG_FILE) or {}).get("train") or {}
    return str(train.get("distribute", "none"))
