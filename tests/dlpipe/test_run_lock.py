"""One owner per run folder (dlpipe/run_lock.py): a second command fails at once naming the first, the lock goes
with its holder (exit or SIGKILL), and the owner's own workers join instead of being refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlpipe.run_lock import LOCK_FILE, OWNER_ENV, FolderInUseError, clear, hold, holder_of

HOLD = "import sys, time\nfrom dlpipe.run_lock import hold\nwith hold(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n"


def stranger_env() -> dict[str, str]:
    """The environment of an unrelated process: no owner token inherited from this one."""
    return {key: value for key, value in os.environ.items() if key != OWNER_ENV}


@pytest.fixture
def holder(tmp_path):
    """Start another process holding a folder for `seconds`; killed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(folder: Path, seconds: float = 60) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                                   text=True, env=stranger_env())
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_holder_fails_at_once_naming_the_first(tmp_path, holder):
    folder = tmp_path / "run"
    first = holder(folder)
    started = time.perf_counter()
    with pytest.raises(FolderInUseError) as refused:
        with hold(folder):
            pytest.fail("two owners of one folder")
    assert time.perf_counter() - started < 1.0
    message = str(refused.value)
    assert f"pid {first.pid}" in message and "another --out" in message and "\n" not in message
    with pytest.raises(FolderInUseError, match=f"inside {folder}.*pid {first.pid}"):
        with hold(folder / "trials" / "0"):  # a part of the held folder belongs to its owner too
            pass
    assert holder_of(folder)["pid"] == first.pid  # the refused one changed nothing
    assert not (folder / "trials").exists()


def test_the_lock_goes_when_its_holder_exits(tmp_path, holder):
    folder = tmp_path / "run"
    first = holder(folder, seconds=0.2)
    assert first.wait(timeout=30) == 0
    assert holder_of(folder) is None and not (folder / LOCK_FILE).exists()
    notes: list[str] = []
    with hold(folder, echo=notes.append):
        assert holder_of(folder)["pid"] == os.getpid()
    assert notes == []  # a clean exit leaves nothing stale to report


def test_a_killed_holders_lock_is_taken_over_naming_its_pid(tmp_path, holder):
    folder = tmp_path / "run"
    first = holder(folder)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert (folder / LOCK_FILE).exists()  # what the dead process left
    notes: list[str] = []
    with hold(folder, echo=notes.append):
        assert holder_of(folder)["pid"] == os.getpid()
    assert len(notes) == 1 and f"pid {first.pid}" in notes[0] and "taking it over" in notes[0]
    assert not (folder / LOCK_FILE).exists()


def test_the_owners_workers_join_and_strangers_do_not(tmp_path):
    folder = tmp_path / "study"
    worker = [sys.executable, "-c", "import sys\nfrom dlpipe.run_lock import hold\n"
              "with hold(sys.argv[1]), hold(sys.argv[1] + '/trials/3'):\n    print('joined')", str(folder)]
    assert OWNER_ENV not in os.environ
    with hold(folder):
        joined = subprocess.run(worker, capture_output=True, text=True, timeout=60)  # inherits the owner's token
        stranger = subprocess.run(worker, capture_output=True, text=True, timeout=60, env=stranger_env())
        with hold(folder):  # the same process again: one owner, counted
            pass
        assert holder_of(folder)["pid"] == os.getpid()
    assert joined.returncode == 0 and joined.stdout.strip() == "joined", joined.stderr
    assert stranger.returncode != 0 and "is in use by another dlpipe command" in stranger.stderr
    assert OWNER_ENV not in os.environ  # children started after the hold are strangers again
    assert holder_of(folder) is None


def test_clear_empties_a_held_folder_but_keeps_its_lock(tmp_path):
    folder = tmp_path / "run"
    with hold(folder):
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.keras").write_bytes(b"x")
        (folder / "config.yaml").write_text("pipeline: x\n")
        clear(folder)
        assert [path.name for path in folder.iterdir()] == [LOCK_FILE]
        assert holder_of(folder)["pid"] == os.getpid()


@pytest.mark.parametrize("command", ["run", "tune", "export", "lr-find"])
def test_dlpipe_commands_on_a_held_folder_fail_in_seconds_with_one_line(tmp_path, holder, color_folder, command):
    folder = tmp_path / "run"
    first = holder(folder)
    args = {"run": ["run", "image-classify", "--data", str(color_folder), "--out", str(folder)],
            "tune": ["tune", "image-classify", "--data", str(color_folder), "--out", str(folder), "--budget-minutes", "1"],
            "export": ["export", str(folder), "--format", "savedmodel"],
            "lr-find": ["lr-find", "image-classify", "--data", str(color_folder), "--out", str(folder)]}[command]
    if command == "export":
        (folder / "model.keras").write_bytes(b"never read: the folder is refused first")
    started = time.perf_counter()
    second = subprocess.run([sys.executable, "-m", "dlpipe", *args], capture_output=True, text=True, timeout=120,
                            env=stranger_env())
    seconds = time.perf_counter() - started
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"pid {first.pid}" in lines[0], second.stderr
    assert seconds < 5  # refused before TensorFlow is imported (importing it alone takes 10-20 s here)
    assert sorted(path.name for path in folder.iterdir()) == sorted({LOCK_FILE, "model.keras"} if command == "export"
                                                                    else {LOCK_FILE})  # nothing else was written


def test_a_folder_that_cannot_be_written_is_one_clear_error(tmp_path):
    from dlpipe.errors import RunStateError

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunStateError, match=r"file: cannot create the run folder.*choose another --out"):
        with hold(tmp_path / "file"):
            pass
    with hold(tmp_path / "new"):  # made by the hold, left empty: removed with the lock
        pass
    assert not (tmp_path / "new").exists()
