"""Where a `dlpipe tune` study lives (`--storage URL`), so several tune processes can share one study.

- no URL: OUT/study.db, Optuna's embedded SQLite storage (one machine; `--workers N` share it);
- `sqlite:///PATH`, `postgresql://USER@HOST:PORT/DB` (many machines; the driver is psycopg 3, the extra
  `dlpipe[tune-postgres]`), `mysql+DRIVER://...`: Optuna's RDBStorage through SQLAlchemy;
- `journal:///PATH`: Optuna's JournalStorage, an append-only log file guarded by a lock file, which holds on
  network file systems where SQLite's locking does not.

Every storage records a heartbeat of each running trial (every `heartbeat_seconds`): a trial whose heartbeat is
older than HEARTBEAT_GRACE intervals belonged to a dead worker, and the next worker to look fails it and queues
its settings again (Optuna's RetryHeartbeatStaleTrialCallback), so a killed worker loses no trial. RDBStorage has
heartbeats built in (the database's clock); the journal gets the same through `_HeartbeatJournal` (the
workers' clocks, which must agree within the grace period).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any

from dlpipe.errors import ConfigError

STUDY_FILE = "study.db"
HEARTBEAT_GRACE = 3  # heartbeat intervals without a beat before a running trial counts as its worker's death
MAX_RETRIES = 3  # a trial whose worker died this many times (it may be what kills them) is given up
POSTGRES_INSTALL = "pip install 'dlpipe[tune-postgres]'"
_BEAT_KEY = "dlpipe:heartbeat"  # the journal's heartbeat: [trial id, unix time] in the trial's system attributes


CREATE_ATTEMPTS = 4  # openings of a new database that another process is creating at the same moment


def storage_url(url: str | None, out_dir: Path) -> str:
    """The storage URL a search uses: the given one (PostgreSQL URLs get psycopg 3 as their driver), or OUT/study.db."""
    if not url:
        return f"sqlite:///{out_dir.absolute() / STUDY_FILE}"
    url = url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        # SQLAlchemy's plain postgresql:// means psycopg2; psycopg 3 is the maintained driver dlpipe installs
        return f"postgresql+psycopg://{rest}" if _has_module("psycopg") or not _has_module("psycopg2") else url
    return url


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    if url.startswith("journal:"):
        return url
    with contextlib.suppress(Exception):
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    return url.split("@", 1)[-1]


def open_storage(url: str, heartbeat_seconds: int) -> Any:
    """An Optuna storage for `url` with trial heartbeats and the retry of a dead worker's trial; one-line errors."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # dlpipe asks and tells, recording each trial's heartbeat itself (tuning._Search.run_and_tell)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    if url.startswith("journal:"):
        return _journal(url, heartbeat_seconds, retry)
    if "://" not in url:
        raise ConfigError("--storage", f"expected a URL such as sqlite:///PATH, postgresql://USER@HOST/DB or "
                                       f"journal:///PATH. Received: {url}")
    _check_driver(url)
    engine_kwargs: dict[str, Any] = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                                     else {"pool_pre_ping": True})  # a trial can outlast an idle connection
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat_seconds, retry)
    except ImportError as error:
        raise ConfigError("--storage", f"{shown(url)}: its database driver is not installed ({error}); install "
                                       f"it, e.g. {POSTGRES_INSTALL} for PostgreSQL") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's connection errors: one line, not a traceback
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ConfigError("--storage", f"cannot open the study storage {shown(url)}: {first}") from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_seconds: int, retry: Any) -> Any:
    """RDBStorage, opened again when another process created the same new database at the same moment: both then
    create its tables and stamp its schema version, and the second stamp fails on the first's row."""
    import time

    import optuna

    for attempt in range(CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
                                              grace_period=HEARTBEAT_GRACE * heartbeat_seconds,
                                              heartbeat_stale_trial_callback=retry)
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's IntegrityError / OperationalError, by message
            if not created_at_once(error) or attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def created_at_once(error: BaseException) -> bool:
    """True for SQLAlchemy's error when this process opened a new database another was creating at that moment (the
    tables already exist, or the schema version was stamped by the other): opening it again a moment later works."""
    return "alembic_version" in str(error) or "already exists" in str(error)


def beat(study: Any, trial: Any) -> None:
    """Record one heartbeat of `trial` now (a trial that never beat is never taken for its dead worker's)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        study._storage.record_heartbeat(trial._trial_id)


def _check_driver(url: str) -> None:
    """A PostgreSQL URL without its driver fails here with the install command, not deep in SQLAlchemy."""
    scheme = url.split("://", 1)[0]
    if not scheme.startswith("postgres"):
        return
    driver = scheme.partition("+")[2] or "psycopg2"
    if not _has_module(driver):
        package = "psycopg2-binary" if driver == "psycopg2" else driver
        how = (POSTGRES_INSTALL if driver == "psycopg" else
               f"pip install {package} (or drop '+{driver}' from the URL to use psycopg 3: {POSTGRES_INSTALL})")
        raise ConfigError("--storage", f"{shown(url)} needs the PostgreSQL driver {driver}, which is not installed; "
                                       f"install it with: {how}")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _journal(url: str, heartbeat_seconds: int, retry: Any) -> Any:
    """journal:///PATH (or journal:PATH): an append-only log file, with heartbeats."""
    from optuna.storages.journal import JournalFileBackend

    path = Path(url.removeprefix("journal:").removeprefix("//"))
    if not path.name:
        raise ConfigError("--storage", f"journal: needs a file, e.g. journal:///shared/study.log. Received: {url}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as error:
        raise ConfigError("--storage", f"{path}: cannot open the journal ({error.strerror}); choose another "
                                       f"path") from None
    return _heartbeat_journal_class()(backend, heartbeat_seconds, retry)


def _heartbeat_journal_class() -> type:
    """JournalStorage with Optuna's heartbeat interface (built here so that importing this module needs no Optuna)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class _HeartbeatJournal(JournalStorage, BaseHeartbeat):
        """Beats as a system attribute naming the trial it was written for: a retried copy of a stale trial
        carries its original's attributes, and must not look stale before its own first beat."""

        def __init__(self, backend: Any, interval: int, retry: Any) -> None:
            super().__init__(backend)
            self._interval, self._retry = interval, retry

        def record_heartbeat(self, trial_id: int) -> None:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed by another worker
                self.set_trial_system_attr(trial_id, _BEAT_KEY, [trial_id, time.time()])

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            oldest = time.time() - HEARTBEAT_GRACE * self._interval
            stale = []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(_BEAT_KEY)
                if beat and beat[0] == trial._trial_id and beat[1] < oldest:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._interval

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return self._retry

    return _HeartbeatJournal
