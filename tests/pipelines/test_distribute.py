"""train.distribute: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy) train the small CNN as well as
one process does, and after a worker is killed mid-epoch the restarted cluster resumes from the chief's last backup;
the same run as a Ray Train job on a local Ray; `mirrored` runs on this CPU; bad settings are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_SETS, write_color_images
from dlpipe.errors import ConfigError
from dlpipe.pipelines import api
from dlpipe.pipelines.training import distribute

WORKER = Path(__file__).with_name("distribute_worker.py")
REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3
SETS = [*TINY_SETS, f"train.epochs={EPOCHS}", "train.learning_rate=0.003", "augment.enabled=false",
        "export.formats=[keras]"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colors")
    write_color_images(root / "blue", "blue", 24, seed=2)
    write_color_images(root / "red", "red", 24, seed=1)
    return root


@pytest.fixture(scope="module")
def one_worker(photos, tmp_path_factory) -> dict:
    """The same training in this process, on one device: the accuracy the workers must match."""
    return api.run("image-classify", data=str(photos), out=tmp_path_factory.mktemp("one") / "out", sets=SETS,
                   echo=lambda _: None).metrics


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(job: dict, tmp: Path, kill_at: list[int] | None = None) -> list[subprocess.Popen]:
    """Two `dlpipe run` workers on 127.0.0.1, each told its place by TF_CONFIG; worker 1 may be killed mid-epoch."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                                      "task": {"type": "worker", "index": index}})}
        mine = {**job, "epochs_file": str(tmp / f"epochs_{index}.txt"), "kill_at": kill_at if index == 1 else None}
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
    outputs = [wait(worker, workers) for worker in workers]
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index} failed:\n{output[-3000:]}"


@pytest.fixture(scope="module")
def two_workers_killed_and_resumed(photos, tmp_path_factory) -> tuple[Path, Path]:
    """Two workers train; worker 1 is SIGKILLed in the second epoch, the chief (stuck without it) too, as a cluster
    manager would; both restart with --resume and finish. Returns the chief's run folder and the scratch folder."""
    tmp = tmp_path_factory.mktemp("two")
    out = tmp / "out"
    job = {"pipeline": "image-classify", "data": str(photos), "out": str(out),
           "sets": [*SETS, "train.distribute=multi_worker"], "resume": False}
    chief, worker = start_workers(job, tmp, kill_at=[1, 1])
    output = wait(worker, [chief, worker])
    chief.kill()
    chief.communicate()
    assert worker.returncode == -signal.SIGKILL, f"worker 1 was to be killed mid-epoch:\n{output[-3000:]}"
    for index in range(2):
        (tmp / f"epochs_{index}.txt").rename(tmp / f"epochs_{index}_before_kill.txt")
    finish(start_workers({**job, "resume": True}, tmp))
    return out, tmp


def test_two_workers_train_as_well_as_one(one_worker, two_workers_killed_and_resumed):
    out, _ = two_workers_killed_and_resumed
    metrics = json.loads((out / "metrics.json").read_text())
    assert one_worker["accuracy"] >= 0.8
    assert metrics["accuracy"] >= 0.8
    assert abs(metrics["accuracy"] - one_worker["accuracy"]) <= 0.2  # 10 validation photos: one photo is 0.1
    assert (out / "model.keras").is_file()


def test_a_killed_worker_resumes_from_the_last_backup(two_workers_killed_and_resumed):
    out, tmp = two_workers_killed_and_resumed
    assert (tmp / "epochs_0_before_kill.txt").read_text().split() == ["0", "1"]
    assert (tmp / "epochs_1_before_kill.txt").read_text().split() == ["0", "1"]
    # the restarted chief and worker begin at epoch 1, the one being trained when worker 1 died, not at 0
    assert (tmp / "epochs_0.txt").read_text().split() == ["1", "2"]
    assert (tmp / "epochs_1.txt").read_text().split() == ["1", "2"]
    history = json.loads((out / "report.json").read_text())["stages"]["train"]["summary"]
    assert history.startswith(f"{EPOCHS} epochs")


def kill_worker_once(folder: Path):
    """A Keras callback for every Ray worker: writes the epochs it begins to folder/epochs_RANK.txt, and SIGKILLs
    worker 1 once, after the second batch of its second epoch (defined here, so Ray pickles it by value)."""
    import keras

    class KillOnce(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.rank = epoch, json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            with open(folder / f"epochs_{self.rank}.txt", "a", encoding="utf-8") as handle:
                handle.write(f"{epoch}\n")

        def on_train_batch_end(self, batch, logs=None):
            if self.rank == 1 and (self.epoch, batch) == (1, 1) and not (folder / "killed").exists():
                (folder / "killed").touch()
                os.kill(os.getpid(), signal.SIGKILL)

    return KillOnce()


def test_ray_train_job_resumes_after_a_worker_dies(photos, one_worker, tmp_path):
    ray = pytest.importorskip("ray")
    from dlpipe.pipelines.distributed_run import run_on_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = run_on_ray("image-classify", str(photos), tmp_path / "out", None, SETS, False, workers=2, address=None,
                         echo=lambda _: None, callbacks=[kill_worker_once(tmp_path)])
    finally:
        ray.shutdown()
    assert (tmp_path / "killed").exists()
    # Ray restarted both workers, which went on from the chief's backup of epoch 0 instead of starting again
    assert (tmp_path / "epochs_0.txt").read_text().split() == ["0", "1", "1", "2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8 and abs(metrics["accuracy"] - one_worker["accuracy"]) <= 0.2
    assert "distribute: multi_worker" in (out / "config.yaml").read_text()


def test_mirrored_runs_on_the_cpu(photos, one_worker, tmp_path):
    result = api.run("image-classify", data=str(photos), out=tmp_path / "out", sets=[*SETS, "train.distribute=mirrored"],
                     echo=lambda _: None)
    assert result.metrics["accuracy"] >= 0.8
    assert (tmp_path / "out" / "model.keras").is_file()


def test_multi_worker_without_a_cluster_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.cluster_from_env()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker",
                                                                                                "index": 1}}))
    assert distribute.cluster_from_env() == distribute.Cluster(workers=2, index=1, chief=False)
    assert distribute.resolve("auto") == "multi_worker"


def test_cross_validation_with_multi_worker_is_a_config_error():
    with pytest.raises(ConfigError, match="cv_folds"):
        api.resolve_config("image-classify", None, ["train.cv_folds=3", "train.distribute=multi_worker"], "photos/")
    with pytest.raises(ConfigError, match="distribute"):
        api.resolve_config("image-classify", None, ["train.distribute=gpus"], "photos/")


def test_ray_engine_options_are_checked_before_ray_starts(tmp_path):
    from click.testing import CliRunner

    from dlpipe.pipelines.cli import main

    cases = [(["--engine", "ray"], "--engine ray needs --out"),
             (["--engine", "ray", "--out", str(tmp_path), "--workers", "1"], "at least 2 workers"),
             (["--engine", "ray", "--out", str(tmp_path), "--overwrite"], "--overwrite runs with --engine local"),
             (["--out", str(tmp_path), "--address", "head:6379"], "--address goes with --engine ray")]
    for extra, message in cases:
        result = CliRunner().invoke(main, ["run", "image-classify", "--data", str(tmp_path), *extra])
        assert result.exit_code == 2 and message in result.output, result.output
