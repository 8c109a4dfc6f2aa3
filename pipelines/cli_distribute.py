"""`dlpipe run --engine ray --workers N [--address ADDR]`: the run's training as a Ray Train job.

A decorator on `dlpipe run`, so the command's own options stay where they are:
`--engine local` (the default) runs the command as before; `--engine ray`
hands the same pipeline, data, config and --set values to
`dlpipe.pipelines.distributed_run.run_on_ray`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from dlpipe.errors import DlpipeError


def ray_engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --engine, --workers and --address to `dlpipe run`."""

    @functools.wraps(command)
    def wrapper(*args: Any, engine: str = "local", workers: int = 2, address: str | None = None, **kwargs: Any) -> Any:
        if engine == "local":
            if address:
                raise DlpipeError("--address goes with --engine ray")
            return command(*args, **kwargs)
        if workers < 2:
            raise DlpipeError("--engine ray trains with at least 2 workers; one process is --engine local")
        if not kwargs.get("out"):
            raise DlpipeError("--engine ray needs --out: a folder every worker can reach")
        unsupported = [name for name in ("overwrite", "track") if kwargs.get(name) not in (None, False, "none")]
        if unsupported:
            raise DlpipeError(f"--{unsupported[0]} runs with --engine local")
        from dlpipe.pipelines.distributed_run import run_on_ray

        out = run_on_ray(kwargs["pipeline"], kwargs.get("data"), kwargs["out"], kwargs.get("config_file"),
                         kwargs.get("sets", ()), kwargs.get("resume", False), workers, address, echo=click.echo)
        click.echo(f"done: outputs in {out}")

    for option in reversed([
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: in this process (train.distribute picks its devices); ray: a Ray Train job of "
                          "--workers TensorFlow workers (MultiWorkerMirroredStrategy; needs a shared --out)."),
        click.option("--workers", type=int, default=2, show_default=True, help="Training workers for --engine ray."),
        click.option("--address", default=None, help="Ray cluster address for --engine ray (default: start a local Ray)."),
    ]):
        wrapper = option(wrapper)
    return wrapper
