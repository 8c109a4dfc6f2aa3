"""`dlpipe tune`: hyperparameter search within a time budget, every trial scored by cross-validation.

Optuna (TPE sampler) proposes settings; each trial is a `train.cv_folds` cross-validation
(pipelines/crossval.py) in OUT/trials/<hash of its settings>/, scored by its pooled accuracy.
The study lives in OUT/study.db (Optuna's SQLite storage), so rerunning the same command after
a kill loads it, re-queues a trial that was cut short (its finished folds are skipped, since
its folder is named by its settings) and carries on until the budget is spent. Every finished
trial prints one line; OUT/trials.png plots them; OUT/best.yaml is the best trial's resolved
config without cross-validation, which `dlpipe run PIPELINE --config OUT/best.yaml` repeats.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from dlpipe import atomic
from dlpipe.errors import ConfigError

STUDY_FILE = "study.db"
BEST_FILE = "best.yaml"


def parse_space(items: Iterable[str]) -> dict[str, tuple]:
    """--space KEY=a,b,c (choices) or KEY=LOW..HIGH (int when both are ints, else float; log when LOW > 0 and HIGH/LOW >= 100)."""
    import yaml

    space: dict[str, tuple] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "expected KEY=a,b,c or KEY=LOW..HIGH, e.g. train.probe_c=0.01..10", source="--space")
        if ".." in raw:
            low, high = (yaml.safe_load(part) for part in raw.split("..", 1))
            if not all(isinstance(v, (int, float)) for v in (low, high)) or low >= high:
                raise ConfigError(key, f"expected LOW..HIGH numbers with LOW < HIGH. Received: {raw!r}", source="--space")
            if isinstance(low, int) and isinstance(high, int):
                space[key] = ("int", low, high)
            else:
                space[key] = ("float", float(low), float(high), low > 0 and high / low >= 100)
        else:
            space[key] = ("categorical", [yaml.safe_load(part) for part in raw.split(",")])
    return space


def tune(pipeline: str, data: str, out: str | Path, budget_minutes: float, folds: int = 3,
         config_file: str | Path | None = None, sets: Iterable[str] = (), space: dict[str, tuple] | None = None,
         max_trials: int | None = None, seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Search until the budget (or max_trials) is spent; returns {best_value, best_params, best_config, trials}."""
    import optuna

    from dlpipe.pipelines import api
    from dlpipe.pipelines.training import crossval
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline(pipeline)
    if space is None:
        if not spec.search_space:
            raise ConfigError("tune", f"no built-in search space for '{pipeline}'; give one with --space KEY=...")
        space = spec.search_space
    base_sets = list(sets)
    api.resolve_config(pipeline, config_file, base_sets, data)  # fail now, not in trial 1, on a bad base config
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=pipeline, storage=f"sqlite:///{out_dir / STUDY_FILE}", direction="maximize",
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed))
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # cut short by a kill: run its settings again
        study.enqueue_trial(stale.params, skip_if_exists=False)
        echo(f"trial {stale.number}: cut short earlier; its settings are queued again")
    deadline = time.monotonic() + budget_minutes * 60

    def objective(trial: "optuna.Trial") -> float:
        params = {key: _suggest(trial, key, dimension) for key, dimension in space.items()}
        trial_sets = [*base_sets, *(f"{k}={_yaml_scalar(v)}" for k, v in params.items()), f"train.cv_folds={folds}",
                      "train.progress=none", "train.tensorboard=false"]
        folder = out_dir / "trials" / hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
        resume = (folder / "config.yaml").is_file()
        config = (api.load_saved_config(folder) if resume
                  else api.resolve_config(pipeline, config_file, trial_sets, data))
        started = time.perf_counter()
        summary = crossval.run_cross_validation(spec, config, folder, resume=resume, echo=lambda _: None)
        score, sd = (spec.cv_report or crossval.CLASSIFIER_REPORT).score(summary)
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("sd", sd)
        best = max([score] + [t.value for t in study.get_trials(deepcopy=False)
                               if t.value is not None and t.number != trial.number])
        shown = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in params.items())
        echo(f"trial {trial.number}: {folds}-fold CV {'accuracy' if spec.cv_report is None else 'score'} "
             f"{score:.3f} ± {sd:.3f} "
             f"in {time.perf_counter() - started:.0f}s ({shown}); best so far {best:.3f}; "
             f"{max(0.0, (deadline - time.monotonic()) / 60):.1f} min of budget left")
        return score

    def out_of_budget(study: "optuna.Study", trial: Any) -> None:
        if time.monotonic() >= deadline:
            study.stop()

    finished = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    remaining = None if max_trials is None else max(0, max_trials - len(finished))
    if remaining != 0 and time.monotonic() < deadline:
        study.optimize(objective, n_trials=remaining, timeout=budget_minutes * 60, callbacks=[out_of_budget],
                       catch=(ConfigError,))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError("--budget-minutes", "no trial finished within the budget; give it more minutes")
    best = study.best_trial
    best_sets = [*base_sets, *(f"{k}={_yaml_scalar(v)}" for k, v in best.params.items())]
    best_config = api.resolve_config(pipeline, config_file, best_sets, data)
    text = (f"# dlpipe tune: best of {len(complete)} trials, {folds}-fold CV accuracy {best.value:.4f}\n"
            f"# repeat with: dlpipe run {pipeline} --config {out_dir / BEST_FILE}\n" + best_config.to_yaml())
    atomic.write_text(out_dir / BEST_FILE, text)
    from dlpipe.pipelines.plots import plot_trials

    plot_trials([(t.number, t.value) for t in complete], out_dir / "trials.png", f"{folds}-fold CV accuracy")
    atomic.write_json(out_dir / "trials.json", [{"number": t.number, "value": t.value, "params": t.params,
                                                "folder": t.user_attrs.get("folder")} for t in complete])
    return {"best_value": best.value, "best_params": best.params, "best_config": str(out_dir / BEST_FILE),
            "trials": len(complete)}


def _suggest(trial: Any, key: str, dimension: tuple) -> Any:
    kind = dimension[0]
    if kind == "categorical":
        return trial.suggest_categorical(key, dimension[1])
    if kind == "int":
        return trial.suggest_int(key, dimension[1], dimension[2])
    return trial.suggest_float(key, dimension[1], dimension[2], log=bool(dimension[3]))


def _yaml_scalar(value: Any) -> str:
    """A value as --set text; floats always with a dot before any exponent, which YAML needs to read a float."""
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text and "e" not in text else f"{value:.10e}"
    return str(value)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
