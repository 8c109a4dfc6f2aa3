"""`dlpipe tune`: hyperparameter search within a time budget, every trial scored by cross-validation.

Optuna (TPE sampler) proposes settings; each trial is a `train.cv_folds` cross-validation
(pipelines/crossval.py) in OUT/trials/<hash of its settings>/, scored by its pooled accuracy.
The study lives in OUT/study.db (Optuna's SQLite storage), so rerunning the same command after
a kill loads it, re-queues a trial that was cut short (its finished folds are skipped, since
its folder is named by its settings) and carries on until the budget is spent. Every finished
trial prints one line; OUT/trials.png plots them; OUT/best.yaml is the best trial's resolved
config without cross-validation, which `dlpipe run PIPELINE --config OUT/best.yaml` repeats.
A proposal that repeats a tried trial's settings is skipped and not counted (TPE draws discrete
settings again; its sampler is seeded anew each session so a resumed study does not replay the
first one). OUT is locked for the search (dlpipe/run_lock.py): a second search there fails at once.

Many workers share one study (`--storage URL`, pipelines/training/tune_storage.py; `--workers N` starts N
local ones, pipelines/training/tune_workers.py): max_trials counts the study's trials, not one worker's; a
worker whose last trials run elsewhere waits for them, since a dead worker's trial (its heartbeat stopped)
is queued again and someone must run it; of two workers drawing the same settings the later trial gives way.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from dlpipe import atomic, run_lock
from dlpipe.errors import ConfigError
from dlpipe.pipelines.training import tune_storage
from dlpipe.pipelines.training.tune_storage import STUDY_FILE  # noqa: F401 - where the study was always found

HEARTBEAT_SECONDS = 30  # a dead worker's trial is run again by another after HEARTBEAT_GRACE of these
BEST_FILE = "best.yaml"
DUPLICATE_LIMIT = 20  # proposals in a row that repeat tried settings before the search stops: the space is spent


def parse_space(items: Iterable[str]) -> dict[str, tuple]:
    """--space KEY=a,b,c (choices) or KEY=LOW..HIGH (int when both are ints, else float; log when LOW > 0 and HIGH/LOW >= 100).

    Each value is read as --set reads one (bounded YAML: `dlpipe.pipelines.yaml_limits`; bad YAML stays a string)."""
    import yaml

    from dlpipe.errors import brief
    from dlpipe.pipelines.yaml_limits import load_bounded

    def scalar(part: str, key: str) -> Any:
        try:
            return load_bounded(part, "--space", key)
        except yaml.YAMLError:
            return part

    space: dict[str, tuple] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "expected KEY=a,b,c or KEY=LOW..HIGH, e.g. train.probe_c=0.01..10", source="--space")
        if ".." in raw:
            low, high = (scalar(part, key) for part in raw.split("..", 1))
            if not all(isinstance(v, (int, float)) for v in (low, high)) or low >= high:
                raise ConfigError(key, f"expected LOW..HIGH numbers with LOW < HIGH. Received: {brief(raw)}", source="--space")
            if isinstance(low, int) and isinstance(high, int):
                space[key] = ("int", low, high)
            else:
                space[key] = ("float", float(low), float(high), low > 0 and high / low >= 100)
        else:
            space[key] = ("categorical", [scalar(part, key) for part in raw.split(",")])
    return space


def tune(pipeline: str, data: str, out: str | Path, budget_minutes: float, folds: int = 3,
         config_file: str | Path | None = None, sets: Iterable[str] = (), space: dict[str, tuple] | None = None,
         max_trials: int | None = None, seed: int = 0, echo: Callable[[str], None] = print,
         storage: str | None = None, workers: int = 1, heartbeat_seconds: int = HEARTBEAT_SECONDS,
         study_name: str | None = None) -> dict[str, Any]:
    """Search until the budget (or max_trials) is spent; returns {best_value, best_params, best_config, trials}.

    The study folder is locked for this search (dlpipe/run_lock.py); its trials run in this process, or in
    `workers` worker processes (each its own TensorFlow) that join the lock and share the study's storage.
    """
    from dlpipe.pipelines import api
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline(pipeline)
    if space is None:
        if not spec.search_space:
            raise ConfigError("tune", f"no built-in search space for '{pipeline}'; give one with --space KEY=...")
        space = spec.search_space
    if workers < 1 or heartbeat_seconds < 1:
        raise ConfigError("--workers" if workers < 1 else "--heartbeat-seconds", "expected a whole number >= 1")
    api.resolve_config(pipeline, config_file, list(sets), data)  # fail now, not in trial 1, on a bad base config
    search = _Search(spec, data, Path(out), folds, config_file, list(sets), space, echo,
                     time.monotonic() + budget_minutes * 60, tune_storage.storage_url(storage, Path(out)),
                     heartbeat_seconds, study_name or spec.name)
    with run_lock.hold(search.out_dir, echo=echo):
        # the embedded default storage is ours alone while we hold OUT: its running trials died with their process
        study = search.open_study(seed, reclaim=not storage)
        if workers == 1:
            search.optimize(study, max_trials)
        else:
            from dlpipe.pipelines.training.tune_workers import run_workers

            run_workers(workers, search.job(max_trials, seed), echo)
        return search.finish(study)


def run_worker(job: dict[str, Any], echo: Callable[[str], None]) -> None:
    """One worker of `dlpipe tune --workers N` (in its own process): search the shared study until it is done."""
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline(job["pipeline"])
    space = {key: tuple(dimension) for key, dimension in job["space"].items()}
    search = _Search(spec, job["data"], Path(job["out"]), job["folds"], job["config_file"], job["sets"], space,
                     echo, time.monotonic() + job["deadline"] - time.time(), job["storage"], job["heartbeat"],
                     job["study"])
    with run_lock.hold(search.out_dir, echo=echo):  # joins its starter's hold (the inherited owner token)
        search.optimize(search.open_study(job["seed"] + 1000 * job["worker"], reclaim=False), job["max_trials"])


@dataclass
class _Search:
    """One `dlpipe tune` search: its settings, the trials it asks Optuna for and what it writes at the end."""

    spec: Any
    data: str
    out_dir: Path
    folds: int
    config_file: str | Path | None
    base_sets: list[str]
    space: dict[str, tuple]
    echo: Callable[[str], None]
    deadline: float
    storage: str
    heartbeat: int
    study_name: str

    def open_study(self, seed: int, reclaim: bool) -> Any:
        """Create or load the study; with `reclaim`, re-queue at once the trials a kill cut short."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = tune_storage.open_storage(self.storage, self.heartbeat)
        study = optuna.create_study(study_name=self.study_name, storage=storage, direction="maximize",
                                    load_if_exists=True)
        # a sampler seeded alike in every session drew the first session's settings again after a resume,
        # so each session continues the seed from the number of trials the study already holds; constant_liar
        # keeps parallel workers from proposing near the same point
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)),
                                                   constant_liar=True)
        retry = storage.get_heartbeat_stale_trial_callback()
        for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if reclaim else ():
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # cut short by a kill: run its settings again
            retry(study, study.trials[stale.number])
            self.echo(f"trial {stale.number}: cut short earlier; its settings are queued again")
        return study

    def job(self, max_trials: int | None, seed: int) -> dict[str, Any]:
        """What a worker process needs to join this search (JSON)."""
        return {"pipeline": self.spec.name, "data": self.data, "out": str(self.out_dir), "folds": self.folds,
                "config_file": None if self.config_file is None else str(self.config_file), "sets": self.base_sets,
                "space": self.space, "deadline": time.time() + self.deadline - time.monotonic(),
                "storage": self.storage, "heartbeat": self.heartbeat, "study": self.study_name,
                "max_trials": max_trials, "seed": seed}

    def optimize(self, study: Any, max_trials: int | None) -> None:
        """Ask for trials until the budget, the study's max_trials counted trials, or the space, is spent.

        A proposal that repeats a finished or running trial's settings (TPE draws discrete settings again)
        is told FAIL, which samplers ignore (PRUNED would count it as a bad result), and is not counted.
        """
        import optuna

        size, repeats, waiting = space_size(self.space), 0, False
        while time.monotonic() < self.deadline:
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed, its settings queued again
            done, running, covered = _progress(study)
            if max_trials is not None and done >= max_trials:
                return
            last_ones = max_trials is not None and done + running >= max_trials
            if last_ones or (size is not None and covered >= size):
                if not running:
                    self.echo(f"every one of the {size} settings of the search space has been tried")
                    return
                if not waiting:
                    self.echo(f"waiting for the {running} trial(s) other workers run (run here again if one dies)")
                waiting = True
                time.sleep(max(0.0, min(self.heartbeat, self.deadline - time.monotonic())))
                continue
            trial = study.ask()
            tune_storage.beat(study, trial)  # at once: a worker killed before its heartbeat thread starts is seen
            params = {key: _suggest(trial, key, dimension) for key, dimension in self.space.items()}
            same = _same_settings(study, trial, params)
            if same is not None:
                trial.set_user_attr("repeats", same)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self.echo(f"trial {trial.number}: the same settings as trial {same}; skipped, not counted")
                repeats += 1
                if repeats >= DUPLICATE_LIMIT:
                    self.echo(f"the last {DUPLICATE_LIMIT} proposals all repeated tried settings; stopping")
                    return
                continue
            repeats, waiting = 0, False
            self.run_and_tell(study, trial, params)

    def run_and_tell(self, study: Any, trial: Any, params: dict[str, Any]) -> None:
        """Run one trial while its heartbeat is recorded, and store its result (or its config error)."""
        import optuna
        from optuna.storages._heartbeat import get_heartbeat_thread

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        state, score = optuna.trial.TrialState.COMPLETE, None
        try:
            with get_heartbeat_thread(trial._trial_id, study._storage):
                score = self.run_trial(trial, params)
        except ConfigError as error:
            trial.set_user_attr("error", str(error)[:300])
            state = optuna.trial.TrialState.FAIL
            self.echo(f"trial {trial.number}: failed: {error}")
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # failed by another worker meanwhile: said below
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            # its heartbeat lapsed (a stalled process) and another worker failed it and queued it again;
            # the retry finds this trial's finished folds in the same folder
            self.echo(f"trial {trial.number}: given up by another worker before it finished; its retry goes on")
            return
        study.tell(trial, score, state=state)

    def run_trial(self, trial: Any, params: dict[str, Any]) -> float:
        """One trial: a cross-validation in OUT/trials/<hash of its settings>/, scored by the task's CV report."""
        from dlpipe.pipelines import api
        from dlpipe.pipelines.training import crossval

        trial_sets = [*self.base_sets, *(f"{k}={_yaml_scalar(v)}" for k, v in params.items()),
                      f"train.cv_folds={self.folds}", "train.progress=none", "train.tensorboard=false"]
        folder = self.out_dir / "trials" / hashlib.sha256(_key(params).encode()).hexdigest()[:12]
        resume = (folder / "config.yaml").is_file()
        config = (api.load_saved_config(folder) if resume
                  else api.resolve_config(self.spec.name, self.config_file, trial_sets, self.data))
        started = time.perf_counter()
        summary = crossval.run_cross_validation(self.spec, config, folder, resume=resume, echo=lambda _: None)
        score, sd = (self.spec.cv_report or crossval.CLASSIFIER_REPORT).score(summary)
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("sd", sd)
        best = max([score] + [t.value for t in trial.study.get_trials(deepcopy=False)
                              if t.value is not None and t.number != trial.number])
        shown = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in params.items())
        self.echo(f"trial {trial.number}: {self.folds}-fold CV {'accuracy' if self.spec.cv_report is None else 'score'} "
                  f"{score:.3f} ± {sd:.3f} in {time.perf_counter() - started:.0f}s ({shown}); best so far {best:.3f}; "
                  f"{max(0.0, (self.deadline - time.monotonic()) / 60):.1f} min of budget left")
        return score

    def finish(self, study: Any) -> dict[str, Any]:
        """Write best.yaml, trials.png and trials.json from the finished trials."""
        import optuna

        from dlpipe.pipelines import api
        from dlpipe.pipelines.plots import plot_trials

        complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise ConfigError("--budget-minutes", "no trial finished within the budget; give it more minutes")
        best = study.best_trial
        best_sets = [*self.base_sets, *(f"{k}={_yaml_scalar(v)}" for k, v in best.params.items())]
        best_config = api.resolve_config(self.spec.name, self.config_file, best_sets, self.data)
        path = self.out_dir / BEST_FILE
        atomic.write_text(path, f"# dlpipe tune: best of {len(complete)} trials, {self.folds}-fold CV accuracy "
                                f"{best.value:.4f}\n# repeat with: dlpipe run {self.spec.name} --config {path}\n"
                          + best_config.to_yaml())
        plot_trials([(t.number, t.value) for t in complete], self.out_dir / "trials.png",
                    f"{self.folds}-fold CV accuracy")
        atomic.write_json(self.out_dir / "trials.json", [{"number": t.number, "value": t.value, "params": t.params,
                                                          "folder": t.user_attrs.get("folder"),
                                                          "host": t.user_attrs.get("host")} for t in complete])
        return {"best_value": best.value, "best_params": best.params, "best_config": str(path),
                "trials": len(complete)}


def _progress(study: Any) -> tuple[int, int, int]:
    """(counted trials: finished or failed on their config, running trials, distinct settings finished or running)."""
    import optuna

    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False, states=(State.COMPLETE, State.RUNNING, State.FAIL))
    done = sum(t.state == State.COMPLETE or (t.state == State.FAIL and "error" in t.user_attrs) for t in trials)
    running = [t for t in trials if t.state == State.RUNNING]
    covered = {_key(t.params) for t in trials if t.state == State.COMPLETE} | {_key(t.params) for t in running}
    return done, len(running), len(covered)


def _same_settings(study: Any, trial: Any, params: dict[str, Any]) -> int | None:
    """The number of a finished trial with these settings, or of an earlier running one (the later one gives way)."""
    import optuna

    State = optuna.trial.TrialState
    for other in study.get_trials(deepcopy=False, states=(State.COMPLETE, State.RUNNING)):
        earlier = other.state == State.COMPLETE or other.number < trial.number
        if other.number != trial.number and earlier and _key(other.params) == _key(params):
            return other.number
    return None


def space_size(space: dict[str, tuple]) -> int | None:
    """How many distinct settings a space holds, or None when a float range makes it endless."""
    size = 1
    for dimension in space.values():
        if dimension[0] == "categorical":
            size *= len({_key(value) for value in dimension[1]})
        elif dimension[0] == "int":
            size *= dimension[2] - dimension[1] + 1
        else:
            return None
    return size


def _key(value: Any) -> str:
    """Settings as comparable text (the trial folder's name is its hash)."""
    return json.dumps(value, sort_keys=True)


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
