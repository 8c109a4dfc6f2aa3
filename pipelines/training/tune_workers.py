"""`dlpipe tune --workers N`: N local worker processes searching one shared study, each with its own TensorFlow.

The starting `dlpipe tune` holds OUT and opens the study; each worker is `python -m` this module with the
search as JSON, joins the hold through the inherited owner token (dlpipe/run_lock.py) and asks the study for
trials until the study, not the worker, has max_trials (tuning.run_worker). The starter waits for them all,
says which died (their trial is run again by the others once its heartbeat is stale), and writes the merged
best. A worker whose starter is gone stops: its running trial's heartbeat stops with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from dlpipe.errors import DlpipeError

_POLL_SECONDS = 0.5


def run_workers(count: int, job: dict[str, Any], echo: Callable[[str], None]) -> None:
    """Start `count` workers on `job` and wait for them; Ctrl-C or SIGTERM stops them all."""
    from dlpipe.pipelines.training.tune_storage import HEARTBEAT_GRACE, shown

    echo(f"{count} workers share the study {job['study']} in {shown(job['storage'])}")
    job = {**job, "parent": os.getpid()}
    workers = {index: subprocess.Popen([sys.executable, "-m", __name__, json.dumps({**job, "worker": index})])
               for index in range(1, count + 1)}
    previous = _sigterm_interrupts()
    try:
        while workers:
            for index, process in list(workers.items()):
                code = process.poll()
                if code is None:
                    continue
                del workers[index]
                if code < 0:
                    echo(f"worker {index} was killed ({signal.Signals(-code).name}); the others run its trial again "
                         f"once its heartbeat is {HEARTBEAT_GRACE * job['heartbeat']} s old")
                elif code:
                    echo(f"worker {index} stopped with exit status {code}")
            time.sleep(_POLL_SECONDS)
    finally:
        for process in workers.values():
            process.terminate()
        for process in workers.values():
            process.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_interrupts() -> Any:
    """SIGTERM to the starter stops its workers too (as Ctrl-C does); returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _exit_with(parent: int) -> None:
    """Stop this worker when its starter is gone (it would otherwise search on, unowned)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(143)

    threading.Thread(target=watch, daemon=True, name="tune-parent-watch").start()


def main(argv: list[str]) -> int:
    """A worker process: `python -m dlpipe.pipelines.training.tune_workers JOB_JSON`."""
    from dlpipe.quiet import quiet_tensorflow

    quiet_tensorflow()
    job = json.loads(argv[0])
    _exit_with(job["parent"])
    name = f"worker {job['worker']}"

    def echo(line: str) -> None:
        print(f"{name}: {line}", flush=True)

    from dlpipe.pipelines.training.tuning import run_worker

    try:
        run_worker(job, echo)
    except DlpipeError as error:
        print(f"{name}: error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
