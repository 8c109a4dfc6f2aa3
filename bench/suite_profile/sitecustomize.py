"""Loaded by every Python process the profiled suite starts (bench/suite_profile.py puts this folder on PYTHONPATH):
at exit, the process's CPU time, what it ran and whether it imported TensorFlow, appended to $SUITE_PROFILE_DIR.
A process killed by a signal writes nothing (its CPU is only in the machine's total)."""

import atexit
import json
import os
import resource
import sys
import time

_STARTED = time.time()


def _write() -> None:
    folder = os.environ.get("SUITE_PROFILE_DIR")
    if not folder:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {"pid": os.getpid(), "argv": " ".join(sys.argv[:3])[-120:], "worker": os.environ.get("PYTEST_XDIST_WORKER"),
              "tensorflow": "tensorflow" in sys.modules, "cpu": usage.ru_utime + usage.ru_stime,
              "wall": time.time() - _STARTED, "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]}
    try:
        with open(os.path.join(folder, "processes.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    except OSError:
        pass


atexit.register(_write)
