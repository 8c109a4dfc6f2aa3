"""Run a pipeline's stages in order, keeping a report that survives failures.

The resolved config is saved before anything runs, so any run can be repeated
or resumed; `report.json` is rewritten after every stage.
"""

from __future__ import annotations

import platform
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from dlpipe import __version__, atomic
from dlpipe.errors import DlpipeError
from dlpipe.models.keras_saving import cache_skipsets
from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.config import ResolvedConfig
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training import distribute
from dlpipe.pipelines.training.precision import global_dtype_policy, precision_of, to_float32

CONFIG_FILE = "config.yaml"
REPORT_FILE = "report.json"


def run_pipeline(
    spec: PipelineSpec,
    config: ResolvedConfig,
    out_dir: Path,
    resume: bool = False,
    echo: Callable[[str], None] = print,
    callbacks: Iterable[Any] = (),
    cache_dir: Path | None = None,
) -> RunContext:
    """Run every stage of `config.stages`; returns the final context."""
    stages = [spec.stage_class(name)(config[name]) for name in config.stages]
    for stage in stages:  # before TensorFlow is imported and anything is written
        stage.preflight()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / CONFIG_FILE, config.to_yaml())
    from dlpipe.models.tasks import TASKS

    task = TASKS.get(spec.task) if spec.task in TASKS else None
    ctx = RunContext(out_dir=out_dir, seed=config.seed, config=config, task=task, resume=resume,
                     echo=echo, extra_callbacks=list(callbacks), cache_dir=cache_dir)
    ctx.report.update(
        pipeline=spec.name,
        task=spec.task,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        resumed=resume,
        versions=_versions(),
        stages={},
    )
    strategy = distribute.make_strategy(distribute.distribute_of(config))  # before any other TensorFlow work (multi_worker)
    _seed_everything(config.seed)
    cache_skipsets()  # every weights save of the run (the per-epoch backup above all) walks the model faster
    total = len(config.stages)
    # train.precision and train.distribute: from the model stage to the end of training
    with ExitStack() as training_scope:
        for number, (name, stage) in enumerate(zip(config.stages, stages), start=1):
            echo(f"[{number}/{total}] {name} ...")
            if name == "model" and precision_of(config) != "float32":
                training_scope.enter_context(global_dtype_policy(precision_of(config)))
            if name == "model" and strategy is not None:
                training_scope.enter_context(strategy.scope())
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                summary = stage.run(ctx)
            except (DlpipeError, KeyboardInterrupt) as error:
                ctx.report["stages"][name] = {"status": "failed", "error": str(error) or type(error).__name__}
                atomic.write_json(out_dir / REPORT_FILE, ctx.report)
                raise
            if name == "train":  # evaluate and export see a float32 model, built-in layers a float32 policy
                training_scope.close()
                if ctx.model is not None:
                    ctx.model = to_float32(distribute.plain_model(ctx.model))
            _stage_done(ctx, out_dir, name, summary, started, cpu_started, f"[{number}/{total}]")
            if name == "train" and not distribute.writes_outputs(strategy):
                echo("  this worker's part is done: the chief evaluates and writes the run's outputs")
                break
    ctx.report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic.write_json(out_dir / REPORT_FILE, ctx.report)
    return ctx


def _stage_done(ctx: RunContext, out_dir: Path, name: str, summary: str, started: float, cpu_started: float,
                counter: str) -> None:
    """Record a finished stage in report.json (rewritten now, so it survives a later failure) and say so."""
    seconds = time.perf_counter() - started
    ctx.report["stages"][name] = {"status": "done", "seconds": round(seconds, 2),
                                  "cpu_seconds": round(time.process_time() - cpu_started, 2), "summary": summary}
    atomic.write_json(out_dir / REPORT_FILE, ctx.report)
    ctx.echo(f"{counter} {name}: {summary} ({seconds:.1f}s)")


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"dlpipe": __version__, "tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()}
