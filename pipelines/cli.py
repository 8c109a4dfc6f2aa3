"""`dlpipe` command line: a thin click shell over `dlpipe.pipelines.api`, the runtime and the server.

TensorFlow is imported inside the commands that need it, so `--help` and
`dlpipe pipelines` answer at once; its C++ logging is silenced before any
import (`--verbose` shows it). Errors a user can fix print one line.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from typing import Any, Callable

import click

from dlpipe import __version__
from dlpipe.pipelines.cli_common import friendly_errors
from dlpipe.pipelines.cli_distribute import ray_engine_options
from dlpipe.quiet import VERBOSE_ENV, quiet_tensorflow

if "--verbose" in sys.argv[1:]:  # read before TensorFlow is first imported, which is when it reads its log level
    os.environ[VERBOSE_ENV] = "1"
quiet_tensorflow()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlpipe")
def main() -> None:
    """dlpipe: from a folder of images or a file of sentences to a fine-tuned, evaluated, exported model."""


def _config_options(out_help: str, data_help: str = "Training data; shortcut for --set load.path=PATH.",
                    set_help: str = "Override one config value, e.g. --set train.epochs=3; repeatable; applied after "
                                    "--config.", required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--data, --out, --config and --set: how `run`, `lr-find` and `tune` each take a pipeline's config."""
    options = [
        click.option("--data", "data", required=required, metavar="PATH", help=data_help),
        click.option("--out", "out", required=required, metavar="DIR", help=out_help),
        click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
                     help="YAML file overriding the pipeline's embedded default config (see `dlpipe config PIPELINE`)."),
        click.option("--set", "sets", metavar="KEY=VALUE", multiple=True, help=set_help),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@main.command("run")
@click.argument("pipeline")
@_config_options("Output folder for checkpoints, metrics, plots and models (default: runs/PIPELINE-TIMESTAMP).")
@click.option("--resume", is_flag=True, help="Continue a killed or interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete the run already in --out and start again.")
@click.option("--track", type=click.Choice(["none", "mlflow"]), default=None,
              help="Log params, per-epoch metrics and artifacts to MLflow (default: the config's train.track).")
@click.option("--track-uri", metavar="URI", default=None,
              help="MLflow store: http://host:5000, sqlite:///FILE.db or a folder (default: $MLFLOW_TRACKING_URI, "
                   "else OUT/../mlflow.db).")
@friendly_errors
@ray_engine_options
def run_command(pipeline: str, data: str | None, out: str | None, config_file: str | None, sets: tuple[str, ...],
                resume: bool, overwrite: bool, track: str | None, track_uri: str | None) -> None:
    """Run PIPELINE (see `dlpipe pipelines`) end to end: load, preprocess, augment, train, evaluate, export.

    The resolved config is saved as DIR/config.yaml; metrics.json, report.json,
    training_curves.png, confusion_matrix.png and the exported models land beside it.
    """
    from dlpipe.pipelines import api

    result = api.run(pipeline, data=data, out=out, config_file=config_file, sets=sets, resume=resume,
                     overwrite=overwrite, echo=click.echo, track=track, track_uri=track_uri)
    click.echo(f"done: outputs in {result.out_dir}")


@main.command("lr-find")
@click.argument("pipeline")
@_config_options("Folder for lr_find.png, lr_find.json and config.yaml (default: runs/lr-find-PIPELINE-TIMESTAMP).",
                 set_help="Override one config value, e.g. --set train.lr_find_steps=100; repeatable.")
@friendly_errors
def lr_find_command(pipeline: str, data: str | None, out: str | None, config_file: str | None,
                    sets: tuple[str, ...]) -> None:
    """Find a learning rate for PIPELINE: an exponential sweep over train.lr_find_steps steps (fastai's lr_find).

    Writes the loss-vs-rate plot (lr_find.png), the sweep (lr_find.json) and the resolved config with the chosen
    rate (config.yaml, for `dlpipe run --config`). `--set train.learning_rate=auto` does the same inside a run.
    """
    from dlpipe.pipelines import api

    result = api.lr_find(pipeline, data=data, out=out, config_file=config_file, sets=sets, echo=click.echo)
    click.echo(f"learning rate: {result['chosen']:.3g} (steepest descent {result['steepest']:.3g}, "
               f"loss minimum {result['minimum']:.3g}); plot and config.yaml in {out or 'runs/'}")


@main.command("tune")
@click.argument("pipeline")
@_config_options("Study folder: study.db (resumable), trials/, trials.png, best.yaml.",
                 data_help="Training data (one folder of class sub-folders).",
                 set_help="Fixed overrides for every trial.", required=True)
@click.option("--budget-minutes", type=float, required=True, help="Stop starting trials after this many minutes.")
@click.option("--folds", default=3, show_default=True, help="Cross-validation folds per trial.")
@click.option("--max-trials", type=int, default=None,
              help="Stop after this many finished trials in the study, all workers' together.")
@click.option("--space", "space_items", metavar="KEY=a,b|LOW..HIGH", multiple=True,
              help="Search this instead of the built-in space, e.g. --space train.probe_c=0.01..10; repeatable.")
@click.option("--storage", metavar="URL", default=None,
              help="Share the study with other tune processes: sqlite:///FILE, postgresql://USER@HOST:PORT/DB or "
                   "journal:///FILE (default: DIR/study.db).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Local worker processes (each its own TensorFlow) searching the study together.")
@click.option("--heartbeat-seconds", type=int, default=30, show_default=True,
              help="A worker's running trial beats this often; one silent for 3 beats is run again by another.")
@click.option("--study-name", metavar="NAME", default=None, help="Study name in --storage (default: PIPELINE).")
@friendly_errors
def tune_command(pipeline: str, data: str, out: str, config_file: str | None, sets: tuple[str, ...],
                 budget_minutes: float, folds: int, max_trials: int | None, space_items: tuple[str, ...],
                 storage: str | None, workers: int, heartbeat_seconds: int, study_name: str | None) -> None:
    """Search hyperparameters of PIPELINE within a time budget, each trial scored by K-fold cross-validation.

    Optuna's TPE sampler; the study is stored in DIR/study.db (or --storage, shared by every tune process given
    it, on this machine or others), so the same command resumes after a kill. --max-trials counts the study's
    trials, whichever worker ran them. One line per finished trial; DIR/best.yaml repeats the best with
    `dlpipe run PIPELINE --config DIR/best.yaml`.
    """
    from dlpipe.pipelines.training.tuning import parse_space, tune

    space = parse_space(space_items) if space_items else None
    result = tune(pipeline, data, out, budget_minutes, folds, config_file, sets, space, max_trials, echo=click.echo,
                  storage=storage, workers=workers, heartbeat_seconds=heartbeat_seconds, study_name=study_name)
    click.echo(f"best: {folds}-fold CV accuracy {result['best_value']:.3f} after {result['trials']} trials; "
               f"config: {result['best_config']} (dlpipe run {pipeline} --config {result['best_config']})")




@main.command("report")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@friendly_errors
def report_command(run_dir: str) -> None:
    """Write RUN/report.html again from the run folder's files: one self-contained page (no network) with the
    data, metrics and intervals, cross-validation, plots, artifacts and the worst errors. `dlpipe run` writes it
    too; this rebuilds it for an older run or after `dlpipe export`."""
    from dlpipe.pipelines.report_page import write_report_page

    click.echo(f"report page: {write_report_page(run_dir)}")


@main.command("doctor")
@click.argument("data", metavar="DATA", type=click.Path(exists=True))
@click.option("--out", "out", metavar="DIR", help="Folder for doctor.csv and doctor.html (default: runs/doctor-TIMESTAMP).")
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="image-classify (a folder) or sentiment (a file) YAML config: the backbone, image size and load options.")
@click.option("--set", "sets", metavar="KEY=VALUE", multiple=True, help="Override one config value (load.*, model.*).")
@click.option("--folds", default=5, show_default=True, help="Folds of the out-of-fold probe.")
@click.option("--near-bits", default=4, show_default=True, help="Perceptual-hash bits (of 64) two near copies may differ in.")
@click.option("--cosine", type=float, default=None, help="Also call photos near copies when their backbone features' "
                                                         "cosine similarity is at least this (e.g. 0.95); "
                                                         "text: character n-grams' cosine, default 0.9.")
@click.option("--probe-c", type=float, default=None, help="Inverse L2 strength of the out-of-fold probe (default: the "
                                                          "one with the lowest out-of-fold log-loss of a grid).")
@friendly_errors
def doctor_command(data: str, out: str | None, config_file: str | None, sets: tuple[str, ...], folds: int,
                   near_bits: int, cosine: float | None, probe_c: float | None) -> None:
    """Check the image folder DATA (one sub-folder per class) for likely label errors, exact and near duplicates,
    duplicates across classes, unreadable files and class imbalance; writes doctor.csv (usable as
    --set load.exclude=doctor.csv) and doctor.html. A file DATA (text<TAB>label, the sentiment task's) is checked
    for duplicate and near-duplicate sentences and conflicting labels."""
    from datetime import datetime
    from pathlib import Path

    from dlpipe.pipelines.doctor import diagnose
    from dlpipe.pipelines.doctor_page import write_doctor_files

    out_dir = Path(out) if out else Path("runs") / f"doctor-{datetime.now():%Y%m%d-%H%M%S}"
    if Path(data).is_file():
        from dlpipe.pipelines.doctor_text import diagnose_text

        diagnosis = diagnose_text(data, config_file, sets, 0.9 if cosine is None else cosine)
        out_dir.mkdir(parents=True, exist_ok=True)
    else:
        diagnosis = diagnose(data, out_dir, config_file, sets, folds, near_bits, cosine, probe_c, echo=click.echo)
    csv_path, html_path = write_doctor_files(diagnosis, out_dir)
    counts = {}
    for finding in diagnosis.findings:
        counts[finding.problem] = counts.get(finding.problem, 0) + 1
    if diagnosis.probe_c:
        click.echo(f"probe: C={diagnosis.probe_c}, out-of-fold accuracy {diagnosis.probe_accuracy:.3f} on the labels "
                   "as given")
    click.echo("found: " + (", ".join(f"{n} {p}" for p, n in counts.items()) or "nothing"))
    click.echo(f"doctor: {csv_path} and {html_path}")


@main.command("pipelines")
def pipelines_command() -> None:
    """List the pipelines, their tasks and their stages."""
    from dlpipe.pipelines.catalog import pipelines

    for name in pipelines().names():
        spec = pipelines().get(name)
        click.echo(f"{name} (task {spec.task}): {spec.description}")
        click.echo(f"  stages: {' -> '.join(spec.roles)}")


@main.command("config")
@click.argument("pipeline")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="a config file to resolve, as run does")
@click.option("--data", help="the data source, as run takes it (a recipe may depend on it)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override one option, as run does")
@friendly_errors
def config_command(pipeline: str, config_file: str | None, data: str | None, sets: tuple[str, ...]) -> None:
    """Print PIPELINE's resolved config, where each value came from and every option explained.

    Without options: the defaults (a starting point for --config). With --data, --config or --set: what `dlpipe
    run` would use with them, each value's source named (default, a recipe, the file, --data, --set).
    """
    from dlpipe.pipelines.api import recipes_in, resolve_config
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline(pipeline)
    config = resolve_config(pipeline, config_file, sets, data)
    click.echo(f"# {spec.description}")
    click.echo(f"pipeline: {pipeline}\ntask: {spec.task}\nseed: {config.seed}\nstages: [{', '.join(config.stages)}]")
    for recipe, _ in recipes_in(spec, config):
        click.echo(f"# recipe {recipe.name}: {recipe.why}")
    for name, section in config.sections.items():
        stage = spec.stage_class(name)
        click.echo(f"\n# {name}: " + _comment(inspect.getdoc(stage) or ""))
        click.echo(f"{name}:  # {(inspect.getdoc(stage.config_cls) or '').splitlines()[0]}".rstrip(" #"))
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            source = config.source_of(f"{name}.{item.name}")
            click.echo(f"  {item.name}: {_yaml_value(value)}  # [{source}] {item.metadata.get('help', '')}")
        for line in stage.option_notes(config.sections):
            click.echo(f"  # {line}")


def _comment(text: str) -> str:
    return "\n#   ".join(line for line in text.splitlines() if line.strip())


@main.command("backbones")
def backbones_command() -> None:
    """List the image backbones and what they need."""
    from dlpipe.models.backbones import BACKBONES

    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        click.echo(f"{name}: {spec.description} (input {spec.input_size}px, normalisation {spec.normalization})")


def _yaml_value(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _add_deploy_commands() -> None:
    from dlpipe.pipelines import cli_deploy

    for command in (cli_deploy.predict_command, cli_deploy.export_command, cli_deploy.evaluate_command,
                    cli_deploy.serve_command, cli_deploy.generate_command):
        main.add_command(command)
    from dlpipe.pipelines.cli_device import check_device_command

    main.add_command(check_device_command)
    from dlpipe.pipelines.cli_runs import runs_command

    main.add_command(runs_command)
    from dlpipe.pipelines.cli_playground import playground_command

    main.add_command(playground_command)
    from dlpipe.pipelines.cli_distill import distill_command

    main.add_command(distill_command)


_add_deploy_commands()

if __name__ == "__main__":
    main()
