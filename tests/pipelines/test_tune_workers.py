"""`dlpipe tune --storage URL --workers N` (issue 31, item 3): workers share one study, and a killed worker's trial
is failed by its stale heartbeat and run again by another, so the study still finishes max_trials settings, each
once, in one folder each. End to end against the default SQLite file; the same heartbeat and retry on a PostgreSQL
server the test starts itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlpipe.pipelines.training.tune_storage import created_at_once
from tests.conftest import TINY_SETS, write_color_images
from helpers_postgres import postgres_server

FAST = [*TINY_SETS, "export.formats=[]", "model.image_size=16", "train.epochs=1", "evaluate.plots=false"]
SPACE = "train.learning_rate=0.0005,0.001,0.002,0.004,0.008"  # five settings; the study runs three
TRIALS = 3
HEARTBEAT = 2  # seconds; a trial silent for 3 beats is its dead worker's


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    write_color_images(root / "blue", "blue", 8, seed=2, size=20)
    write_color_images(root / "red", "red", 8, seed=1, size=20)
    return root


def _tune(colours: Path, out: Path, storage: str | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "dlpipe.pipelines.cli", "tune", "image-classify", "--data", str(colours),
               "--out", str(out), "--budget-minutes", "5", "--folds", "2", "--max-trials", str(TRIALS),
               "--space", SPACE, "--workers", "2", "--heartbeat-seconds", str(HEARTBEAT)]
    command += [part for item in FAST for part in ("--set", item)] + (["--storage", storage] if storage else [])
    with open(out.parent / "tune.log", "w") as log:  # a file, not a pipe the test would have to keep draining
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)


def _output(out: Path) -> str:
    return (out.parent / "tune.log").read_text(errors="replace")


def _kill_a_worker_mid_trial(study_of, process: subprocess.Popen, out: Path) -> tuple[int, int]:
    """SIGKILL the worker of a needed trial begun after another trial finished: (trial number, pid)."""
    import optuna

    State = optuna.trial.TrialState
    deadline, study = time.monotonic() + 240, None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            study = study or study_of()  # opened once: each opening checks the schema, costing CPU the workers need
            trials = study.get_trials(deepcopy=False)
        except (KeyError, FileNotFoundError):  # the study is not created yet
            trials = []
        except Exception as error:  # noqa: BLE001 - the workers are creating the new database this moment (they
            # retry the same: tune_storage._rdb_storage)
            if not created_at_once(error):
                raise
            trials = []
        finished = [t.datetime_complete for t in trials if t.state == State.COMPLETE]
        running = [t for t in trials if t.state == State.RUNNING]
        # a trial begun after one finished has a whole trial's work ahead (killing the first trial raced its end:
        # its twin had just finished), and one the study needs (two workers may both start the last trial at once)
        fresh = [t for t in running if finished and t.datetime_start >= min(finished) and "pid" in t.user_attrs]
        if fresh and len(finished) + len(running) <= TRIALS:
            os.kill(fresh[-1].user_attrs["pid"], signal.SIGKILL)
            return fresh[-1].number, fresh[-1].user_attrs["pid"]
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"no trial ran while another had finished; the search said:\n{_output(out)[-3000:]}")


def _check_search(out: Path, study, process: subprocess.Popen, killed: tuple[int, int]) -> None:
    import optuna

    try:
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()  # its workers stop when they find their starter gone
    output = _output(out)
    assert process.returncode == 0, output[-3000:]
    assert "was killed (SIGKILL)" in output
    assert f"after {TRIALS} trials" in output, output[-3000:]  # the merged best over both workers' trials
    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == State.COMPLETE]
    settings = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(complete) == TRIALS and len(set(settings)) == TRIALS  # none lost, none run twice
    number, pid = killed
    assert trials[number].state == State.FAIL
    retry = [t for t in complete if t.system_attrs.get("failed_trial") == number]
    assert len(retry) == 1 and retry[0].params == trials[number].params and retry[0].user_attrs["pid"] != pid
    assert len({t.user_attrs["pid"] for t in [*complete, trials[number]]}) == 2  # both workers ran trials
    folders = sorted(p.name for p in (out / "trials").iterdir())
    assert len(folders) == TRIALS  # the retry resumed the killed trial's folder
    assert sorted(Path(t.user_attrs["folder"]).name for t in complete) == folders
    assert all((out / "trials" / name / "cv.json").is_file() for name in folders)
    assert len(json.loads((out / "trials.json").read_text())) == TRIALS


@pytest.mark.long
def test_two_workers_share_the_default_sqlite_study_and_a_killed_workers_trial_runs_again(colours, tmp_path):
    import optuna

    out = tmp_path / "tune"
    process = _tune(colours, out, storage=None)
    def study_of():
        if not (out / "study.db").is_file():  # loading a missing file would make it
            raise FileNotFoundError(out / "study.db")
        return optuna.load_study(study_name="image-classify", storage=f"sqlite:///{out / 'study.db'}")

    killed = _kill_a_worker_mid_trial(study_of, process, out)
    _check_search(out, study_of(), process, killed)


def test_a_postgresql_study_fails_a_dead_workers_trial_by_its_heartbeat_and_runs_it_again_once(tmp_path):
    """The heartbeat and retry of the SQLite run above, on a PostgreSQL server (the storage for workers on several
    machines). Both are Optuna's RDBStorage behind dlpipe's open_storage, so the end-to-end kill of a worker runs
    once, on the default SQLite file; here a silent trial on PostgreSQL is failed, queued once and taken again."""
    import optuna

    from dlpipe.pipelines.training.tune_storage import beat, open_storage, storage_url

    State = optuna.trial.TrialState
    with postgres_server(tmp_path) as url:  # as `dlpipe tune --storage URL` opens it
        storage = open_storage(storage_url(url, tmp_path), heartbeat_seconds=1)
        study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
        silent, alive = study.ask(), study.ask()
        silent.suggest_int("x", 0, 9)
        beat(study, silent)
        time.sleep(3.5)  # 3 beats of silence: its worker is dead
        beat(study, alive)
        optuna.storages.fail_stale_trials(study)
        optuna.storages.fail_stale_trials(study)  # a second worker looking again fails and queues nothing more
        assert [t.state for t in study.get_trials(deepcopy=False)] == [State.FAIL, State.RUNNING, State.WAITING]
        again = study.ask()
        assert again.number == 2 and again.suggest_int("x", 0, 9) == silent.params["x"]
        assert study.get_trials(deepcopy=False)[2].system_attrs.get("failed_trial") == silent.number


def test_the_journal_fails_a_silent_trial_and_queues_its_settings_once(tmp_path):
    """The journal file (for network file systems) has no heartbeat of its own in Optuna: dlpipe's must fail a
    trial silent for 3 beats, queue it once, and not take the queued copy (carrying the old beat) for dead."""
    import optuna

    from dlpipe.pipelines.training.tune_storage import open_storage

    State = optuna.trial.TrialState
    storage = open_storage(f"journal://{tmp_path / 'study.log'}", heartbeat_seconds=1)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    silent, alive = study.ask(), study.ask()
    silent.suggest_int("x", 0, 9)
    storage.record_heartbeat(silent._trial_id)
    time.sleep(3.3)
    storage.record_heartbeat(alive._trial_id)
    optuna.storages.fail_stale_trials(study)
    optuna.storages.fail_stale_trials(study)  # a second worker looking again fails and queues nothing more
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [State.FAIL, State.RUNNING, State.WAITING]
    again = study.ask()  # the queued copy, running now, with its original's (old) heartbeat attribute
    assert again.number == 2 and again.params == silent.params
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials(deepcopy=False)[2].state == State.RUNNING


def test_a_postgresql_url_without_its_driver_names_the_install_command(tmp_path):
    from dlpipe.errors import ConfigError
    from dlpipe.pipelines.training.tune_storage import open_storage

    needs = r"needs the PostgreSQL driver no_such_driver.*pip install 'dlpipe\[tune-postgres\]'"
    with pytest.raises(ConfigError, match=needs):
        open_storage("postgresql+no_such_driver://dlpipe@127.0.0.1:1/db", heartbeat_seconds=1)


def _open_at(url: str, barrier) -> str:
    from dlpipe.pipelines.training.tune_storage import open_storage

    barrier.wait()
    try:
        open_storage(url, 30)
    except Exception as error:  # noqa: BLE001 - reported to the test
        return str(error)
    return "ok"


def test_processes_opening_one_new_sqlite_study_at_once_all_get_it(tmp_path):
    """The first opening of a new database creates its tables and stamps its schema version: processes racing on
    it (two workers, or a second `dlpipe tune` started with the first) must all get the storage, not a UNIQUE error."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'study{attempt}.db'}"
        with context.Manager() as manager:
            barrier = manager.Barrier(4)
            with context.Pool(4) as pool:
                answers = pool.starmap(_open_at, [(url, barrier)] * 4)
        assert answers == ["ok"] * 4, answers
