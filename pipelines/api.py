"""The Python entry point behind `dlpipe run`; tests and notebooks call it too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from dlpipe import run_lock
from dlpipe.errors import DlpipeError, RunStateError
from dlpipe.pipelines.catalog import PipelineSpec, get_pipeline
from dlpipe.pipelines.config import ResolvedConfig, load_yaml, parse_sets, resolve
from dlpipe.pipelines.engine import CONFIG_FILE


@dataclass
class RunResult:
    """Where a run wrote its outputs and what it measured."""

    out_dir: Path
    config: ResolvedConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def resolve_config(
    pipeline: str,
    config_file: str | Path | None = None,
    sets: Iterable[str] = (),
    data: str | None = None,
) -> ResolvedConfig:
    """The stage dataclasses' defaults < matching recipes < config file < --data < --set, checked against the
    stage configs; `config.source_of(key)` says which layer set a value."""
    from dlpipe.pipelines.recipes import recipe_layers

    spec = get_pipeline(pipeline)
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file:
        layers.append((str(config_file), load_yaml(config_file)))
    if data is not None:
        layers.append(("--data", {"load": {"path": str(data)}}))
    layers.append(("--set", parse_sets(sets)))
    stage_configs = spec.stage_configs()
    # a recipe matches on the user's values as given; a mistake in them is named by the one resolve below
    layers = recipe_layers(spec.recipes, stage_configs, layers) + layers
    return resolve(spec.name, stage_configs, layers, task=spec.task)


def recipes_in(spec: PipelineSpec, config: ResolvedConfig) -> list[tuple[Any, list[str]]]:
    """(recipe, the dotted keys it set) for each recipe of `spec` that set at least one value of `config`."""
    found = []
    for recipe in spec.recipes:
        keys = sorted(key for key, source in config.origins.items() if source == f"recipe {recipe.name}" and "." in key)
        if keys:
            found.append((recipe, keys))
    return found


def applied_recipes(spec: PipelineSpec, config: ResolvedConfig) -> list[str]:
    """One line per recipe that set at least one value of `config`: its name, what it set and why."""
    return [f"recipe {recipe.name} ({recipe.why}): " + ", ".join(f"{key}={_value(config, key)}" for key in keys)
            for recipe, keys in recipes_in(spec, config)]


def _value(config: ResolvedConfig, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return getattr(config[section], key)


def load_saved_config(run_dir: str | Path) -> ResolvedConfig:
    """The resolved config a run saved (OUT/config.yaml), checked again against the stage configs."""
    saved = Path(run_dir) / CONFIG_FILE
    if not saved.is_file():
        raise RunStateError(f"{run_dir}: no run here (no {CONFIG_FILE})")
    data = load_yaml(saved)
    spec = get_pipeline(str(data.get("pipeline", "")))
    return resolve(spec.name, spec.stage_configs(), [(str(saved), data)], task=spec.task)


def run(
    pipeline: str,
    data: str | None = None,
    out: str | Path | None = None,
    config_file: str | Path | None = None,
    sets: Iterable[str] = (),
    resume: bool = False,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
    callbacks: Iterable[Any] = (),
    track: str | None = None,
    track_uri: str | None = None,
) -> RunResult:
    """Run a pipeline end to end and return its outputs.

    A new run refuses an output folder that already holds a run, unless
    `resume` (continue it with its saved config) or `overwrite` (start again).
    The folder is locked for this run before anything is written to it (dlpipe/run_lock.py).
    `track` ('mlflow'; default: the config's train.track) logs the run to MLflow at `track_uri`
    (dlpipe/pipelines/tracking.py).
    """
    from dlpipe.pipelines import tracking

    spec: PipelineSpec = get_pipeline(pipeline)
    out_dir = Path(out) if out else Path("runs") / f"{pipeline}-{datetime.now():%Y%m%d-%H%M%S}"
    from dlpipe.pipelines import distributed_run

    if distributed_run.is_worker():  # a multi-worker run's other workers leave out_dir to the chief
        return distributed_run.run_as_worker(spec, out_dir, data, config_file, sets, resume, echo, callbacks)
    with run_lock.hold(out_dir, echo=echo), tracking.session(track, track_uri, echo) as tracker:
        return _run_in(spec, out_dir, data, config_file, sets, resume, overwrite, echo, callbacks, tracker)


def _run_in(spec: PipelineSpec, out_dir: Path, data: str | None, config_file: str | Path | None, sets: Iterable[str],
            resume: bool, overwrite: bool, echo: Callable[[str], None], callbacks: Iterable[Any],
            tracker: Any) -> RunResult:
    """`run` once it owns `out_dir`; `tracker` (pipelines/tracking.py) starts once the config is known."""
    from dlpipe.pipelines.engine import run_pipeline

    pipeline = spec.name
    saved = out_dir / CONFIG_FILE
    if resume:
        if not saved.is_file():
            raise RunStateError(f"{out_dir}: no run to resume (no {CONFIG_FILE}); start one without --resume")
        if config_file or list(sets) or data:
            raise RunStateError("--resume continues with the run's saved config; drop --config, --set and --data")
        from dlpipe.pipelines.training.checkpoints import check_checkpoints

        check_checkpoints(out_dir)
        config = resolve(spec.name, spec.stage_configs(), [(str(saved), load_yaml(saved))], task=spec.task)
    else:
        if saved.is_file() and not overwrite and _never_trained(out_dir):
            echo(f"note: {out_dir} holds a run that stopped before training; starting it again")
            overwrite = True
        if saved.is_file():
            if not overwrite:
                raise RunStateError(
                    f"{out_dir} already holds a run; pass --resume to continue it, --overwrite to start again, or another --out"
                )
            run_lock.clear(out_dir)  # everything but the lock this run holds
        config = resolve_config(pipeline, config_file, sets, data)
        for line in applied_recipes(spec, config):
            echo(line)
    tracker.start(config, out_dir, resume)
    from dlpipe.pipelines.training import crossval

    cv = None
    if crossval.check_cross_validation(config):
        cv = crossval.run_cross_validation(spec, config, out_dir, resume=resume, echo=echo, callbacks=callbacks)
        echo("final run on the whole folder, as configured:")
    try:
        ctx = run_pipeline(spec, config, out_dir, resume=resume and (out_dir / "report.json").is_file(), echo=echo,
                           callbacks=[*callbacks, *tracker.callbacks()],
                           cache_dir=out_dir / crossval.FEATURES_DIR if cv else None)
    except DlpipeError:
        _page_of_failed_run(out_dir, echo)
        raise
    if cv is not None:
        from dlpipe import atomic
        from dlpipe.pipelines.stages.evaluate import METRICS_FILE

        ctx.metrics["cross_validation"] = cv
        if (out_dir / METRICS_FILE).is_file():
            atomic.write_json(out_dir / METRICS_FILE, ctx.metrics)
        echo((spec.cv_report or crossval.CLASSIFIER_REPORT).summary_line(cv) + " <- the estimate to trust")
    from dlpipe.pipelines.report_explain import explain_worst_errors
    from dlpipe.pipelines.report_page import write_report_page

    explained = explain_worst_errors(ctx)
    if explained:
        echo(explained)
    if ctx.artifacts and ctx.task is not None:  # last, so it sees metrics.json with the cross-validation
        from dlpipe.pipelines.model_card import CARD_TASKS, write_model_card

        if ctx.task.name in CARD_TASKS:
            write_model_card(out_dir)
    doctor_line = _run_doctor(ctx)
    if doctor_line:
        echo(doctor_line)
    echo(f"report page: {write_report_page(out_dir)}")
    return RunResult(out_dir=out_dir, config=config, metrics=ctx.metrics, artifacts=ctx.artifacts, report=ctx.report)


def _run_doctor(ctx: Any) -> str | None:
    """The run's own data check (pipelines/run_doctor.py); a file it cannot read costs the check, never the run."""
    from dlpipe.pipelines.run_doctor import write_run_doctor

    try:
        return write_run_doctor(ctx)
    except (OSError, ValueError, ImportError) as error:
        return f"data doctor skipped: {error}"


def lr_find(
    pipeline: str,
    data: str | None = None,
    out: str | Path | None = None,
    config_file: str | Path | None = None,
    sets: Iterable[str] = (),
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`dlpipe lr-find`: run the stages before `train`, sweep the learning rate, write lr_find.png and lr_find.json.

    OUT/config.yaml is the resolved config with the chosen rate, ready for `dlpipe run --config`.
    """
    import dataclasses

    from dlpipe import atomic
    from dlpipe.errors import ConfigError
    from dlpipe.pipelines.engine import run_pipeline

    spec = get_pipeline(pipeline)
    config = resolve_config(pipeline, config_file, sets, data)
    if "train" not in config.stages:
        raise ConfigError("stages", f"pipeline '{pipeline}' has no train stage to find a learning rate for")
    out_dir = Path(out) if out else Path("runs") / f"lr-find-{pipeline}-{datetime.now():%Y%m%d-%H%M%S}"
    stage = spec.stage_class("train")(config["train"])
    if not hasattr(stage, "find_learning_rate"):
        raise ConfigError("pipeline", f"the {pipeline} pipeline's train stage has no learning-rate finder")
    before = config.stages[: config.stages.index("train")]
    with run_lock.hold(out_dir, echo=echo):  # one owner per folder, as `run`
        ctx = run_pipeline(spec, dataclasses.replace(config, stages=before), out_dir, echo=echo)
        result = stage.find_learning_rate(ctx, ctx.need("model", "model"), out_dir)
        chosen = dataclasses.replace(config["train"], learning_rate=result["chosen"])
        atomic.write_text(out_dir / CONFIG_FILE,
                          dataclasses.replace(config, sections={**config.sections, "train": chosen}).to_yaml())
    return result


def _page_of_failed_run(out_dir: Path, echo: Callable[[str], None]) -> None:
    """report.html of a run a stage stopped (e.g. below evaluate.min_accuracy): how far it got, its metrics and
    worst errors if evaluated; a page that cannot be written must not hide the run's own error."""
    from dlpipe.pipelines.report_page import write_report_page

    if (out_dir / "report.json").is_file():
        try:
            echo(f"report page: {write_report_page(out_dir)}")
        except (DlpipeError, OSError) as error:
            echo(f"note: no report page ({error})")


def _never_trained(out_dir: Path) -> bool:
    """True for a run that failed before training began (e.g. a missing --data): nothing in it is worth keeping."""
    from dlpipe.pipelines.training.stage import CHECKPOINT_DIR

    from dlpipe.pipelines.training.crossval import FOLDS_DIR

    return (not (out_dir / CHECKPOINT_DIR).exists() and not any(out_dir.glob("model*"))
            and not (out_dir / FOLDS_DIR).exists())
