"""Multi-worker test runs: `dlpipe run` workers on 127.0.0.1, each a process told its place by TF_CONFIG.

Each worker runs tests/pipelines/distribute_worker.py with a JSON job (pipeline, data, out, sets, resume); it
writes the number of every epoch it begins to tmp/epochs_INDEX.txt, and worker 1 can be SIGKILLed mid-epoch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).parent / "pipelines" / "distribute_worker.py"
REPO = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(job: dict | list[dict], tmp: Path, kill_at: list[int] | None = None) -> list[subprocess.Popen]:
    """Two `dlpipe run` workers on 127.0.0.1, each told its place by TF_CONFIG; worker 1 may be killed mid-epoch.

    A list of jobs runs one after another in the same two processes (TensorFlow starts once); worker INDEX
    writes the epochs it begins to tmp/epochs_INDEX.txt, or for the list's job N to tmp/epochs_INDEX_N.txt.
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                                      "task": {"type": "worker", "index": index}})}
        kill = kill_at if index == 1 else None
        if isinstance(job, list):
            mine: dict | list[dict] = [{**one, "epochs_file": str(tmp / f"epochs_{index}_{n}.txt"), "kill_at": kill}
                                       for n, one in enumerate(job)]
        else:
            mine = {**job, "epochs_file": str(tmp / f"epochs_{index}.txt"), "kill_at": kill}
        workers.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(mine)], cwd=REPO, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return workers


def wait(worker: subprocess.Popen, everyone: list[subprocess.Popen], timeout: float = 240) -> str:
    """The worker's output once it exits; on a timeout every worker is killed, so none outlives the test."""
    try:
        return worker.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        for process in everyone:
            process.kill()
        raise


def finish(workers: list[subprocess.Popen]) -> None:
    """Wait for every worker; each must have exited cleanly."""
    outputs = [wait(worker, workers) for worker in workers]
    failed = [f"worker {index} failed (exit {worker.returncode}):\n{output[-3000:]}"
              for index, (worker, output) in enumerate(zip(workers, outputs)) if worker.returncode != 0]
    assert not failed, "\n\n".join(failed)  # every failed worker's output: the first to fail may be the second
