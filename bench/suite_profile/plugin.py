"""pytest plugin of bench/suite_profile.py, loaded in every xdist worker: per test its time, and inside it the
pipeline runs (`dlpipe.pipelines.api.run`) and TensorFlow's function tracing, written as JSON lines into
$SUITE_PROFILE_DIR when the worker ends. Measures only; changes nothing a test sees."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RECORDS: list[dict[str, Any]] = []
_DEPTH = [0]


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]


def _record_runs() -> None:
    from dlpipe.pipelines import api

    run = api.run

    def timed_run(pipeline: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return run(pipeline, *args, **kwargs)
        finally:
            RECORDS.append({"kind": "run", "test": _current_test(), "pipeline": pipeline,
                            "seconds": time.perf_counter() - started})

    api.run = timed_run


def _record_traces() -> None:
    """Each outermost tf.function trace (a Keras train/test/predict step, a tf.data map, an export signature)."""
    try:
        from tensorflow.python.eager.polymorphic_function import tracing_compilation as tracing
    except ImportError:
        return
    create = tracing._create_concrete_function  # noqa: SLF001 - the one place every trace goes through

    def timed_create(*args: Any, **kwargs: Any) -> Any:
        _DEPTH[0] += 1
        started = time.perf_counter()
        try:
            return create(*args, **kwargs)
        finally:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                RECORDS.append({"kind": "trace", "test": _current_test(), "seconds": time.perf_counter() - started})

    tracing._create_concrete_function = timed_create  # noqa: SLF001


def pytest_configure(config: Any) -> None:
    """Runs and traces are counted where tests run: each xdist worker, or the one process without xdist."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not config.getoption("numprocesses", None):
        _record_runs()
        _record_traces()


def pytest_runtest_logreport(report: Any) -> None:
    """Test times are counted once, where every report arrives: the xdist controller (or the one process)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        RECORDS.append({"kind": "test", "test": report.nodeid, "phase": report.when, "seconds": report.duration})


def pytest_unconfigure(config: Any) -> None:
    folder = os.environ.get("SUITE_PROFILE_DIR")
    if folder and RECORDS:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(Path(folder) / f"tests_{name}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in RECORDS)
