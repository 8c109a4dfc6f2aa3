"""One owner per run folder: `dlpipe run`, `export` and `tune` lock their output folder before writing to it.

Two unrelated commands writing one folder used to leave it with one run's config.yaml and
the other's checkpoints. Now the first takes an exclusive `fcntl.flock` on FOLDER/.dlpipe.lock
(which records its pid, host, command line and start time) before anything else is written; a
second fails at once with one line naming the holder and the fix (wait, or another --out).

- Released on exit: the file is removed by `hold`'s exit; on a crash or SIGKILL the kernel drops
  the flock with the process, and the next command takes the stale file over, naming the dead pid.
- A folder inside a held folder (a tune study's trials/<id>/) belongs to the same owner: another
  command is refused there too.
- The same process may hold a folder again (nested calls, e.g. a tune trial running a pipeline);
  that is one owner, counted, released when the outermost hold ends.
- Workers join their owner: while it holds a folder, the holder puts its token in the environment
  variable DLPIPE_RUN_OWNER, which the child processes it starts (a search's or a multi-worker run's
  workers) inherit, and a `hold` that finds the folder held under the same token joins instead of
  failing (and holds nothing itself). Each worker must
  write only its own part (its trial folder, its worker-N files). A worker on another machine
  sharing the folder joins by being started with DLPIPE_RUN_OWNER set to the token in the lock file.
  The token keeps accidents apart; it is not a security boundary (it is readable in the lock file).

flock is advisory and local: it does not keep out a process that ignores it, and it may not hold
across machines on some network file systems. POSIX only (fcntl).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shlex
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from dlpipe.errors import RunStateError

LOCK_FILE = ".dlpipe.lock"
OWNER_ENV = "DLPIPE_RUN_OWNER"
_RETRIES = 5  # a few tries ~20 ms apart ride out another process's momentary probe of the same file
_held: dict[Path, list] = {}  # folder -> [open lock fd, nesting count, whether we made it], for this process
_guard = threading.Lock()
_own_token: str | None = None
_env_set = False  # whether this process put its token in the environment (done while it holds a folder)


class FolderInUseError(RunStateError):
    """Another process holds the run folder."""

    def __init__(self, folder: Path, holder: dict, held_folder: Path):
        self.folder = folder
        self.holder = holder
        where = "" if held_folder == folder else f" (inside {held_folder}, which is held)"
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}: "
               f"{_clip(str(holder.get('command', '?')))}") if holder else "a process that is just starting"
        super().__init__(f"{folder} is in use by another dlpipe command{where}, {who}; wait for it to finish "
                         f"or choose another --out")


def owner_token() -> str:
    """This process's owner token: its owner's from DLPIPE_RUN_OWNER when it is a worker, else its own."""
    global _own_token
    if os.environ.get(OWNER_ENV):
        return os.environ[OWNER_ENV]
    _own_token = _own_token or secrets.token_hex(8)
    return _own_token


@contextlib.contextmanager
def hold(folder: str | os.PathLike, echo: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Own `folder` (created if missing) for the `with` block; raises FolderInUseError if another owner has it."""
    path = Path(folder).absolute()
    with _guard:
        if path in _held:
            _held[path][1] += 1
            counted = True
        else:
            made = not path.exists()
            fd = _acquire(path, echo or _stderr)
            counted = fd is not None
            if fd is not None:
                _held[path] = [fd, 1, made]
                _share_token()
    try:
        yield path
    finally:
        if counted:
            with _guard:
                entry = _held[path]
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[path]
                    _release(path, entry[0], entry[2])
                    if not _held:
                        _unshare_token()


def holder_of(folder: str | os.PathLike) -> dict | None:
    """Who holds `folder` now (pid, host, command, since, token), or None when nobody does."""
    path = Path(folder).absolute() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read(fd)
    finally:
        os.close(fd)


def clear(folder: str | os.PathLike) -> None:
    """Delete everything in a held `folder` but its lock file (`--overwrite`): the folder keeps its owner."""
    import shutil

    for child in Path(folder).iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _acquire(path: Path, echo: Callable[[str], None]) -> int | None:
    """The open, locked lock file of `path`, or None when this process joins its owner's hold."""
    _refuse_inside_held(path)
    lock = path / LOCK_FILE
    while True:
        try:
            path.mkdir(parents=True, exist_ok=True)  # in the loop: a holder that made it may just have removed it
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunStateError(f"{path}: cannot create the run folder or its lock file ({error.strerror}); choose "
                                f"another --out or fix the folder's permissions") from None
        if not _try_lock(fd, fcntl.LOCK_EX):
            holder = _read(fd)
            os.close(fd)
            if _ours(holder):
                return None  # a worker of the owner: it joins
            raise FolderInUseError(path, holder, path)
        if _same_file(fd, lock):
            break
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one
    stale = _read(fd)
    if stale:
        echo(f"note: {path} was held by pid {stale.get('pid', '?')} on {stale.get('host', '?')} "
             f"({_clip(str(stale.get('command', '?')))}, since {stale.get('since', '?')}), which is gone; taking it over")
    _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "command": _command_line(),
                "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), "token": owner_token()})
    return fd


def _refuse_inside_held(path: Path) -> None:
    """A folder inside another owner's held folder (a study's trial) is theirs: refuse it."""
    for parent in path.parents:
        if parent in _held:
            return  # ours
        holder = holder_of(parent)
        if holder is not None:
            if _ours(holder):
                return
            raise FolderInUseError(path, holder, parent)


def _ours(holder: dict) -> bool:
    """True when the holder is this process's owner (same token: we are its worker, or it is us)."""
    token = os.environ.get(OWNER_ENV)
    return bool(token) and holder.get("token") == token


def _try_lock(fd: int, kind: int) -> bool:
    for attempt in range(_RETRIES):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if attempt < _RETRIES - 1:
            time.sleep(0.02)
    return False


def _same_file(fd: int, lock: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock))
    except FileNotFoundError:
        return False


def _read(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        value = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write(fd: int, holder: dict) -> None:
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _share_token() -> None:
    """Children started while this process holds a folder inherit its token: they are its workers."""
    global _env_set
    if not os.environ.get(OWNER_ENV):
        os.environ[OWNER_ENV] = owner_token()
        _env_set = True


def _unshare_token() -> None:
    """Once nothing is held, children started later are strangers again."""
    global _env_set
    if _env_set:
        os.environ.pop(OWNER_ENV, None)
        _env_set = False


def _release(path: Path, fd: int, made: bool) -> None:
    """Remove the file while still holding it (so nobody locks a file about to vanish), then unlock;
    a folder the hold made and nothing else filled (a run refused for a bad config) goes too."""
    with contextlib.suppress(OSError):
        (path / LOCK_FILE).unlink()
    os.close(fd)
    if made:
        with contextlib.suppress(OSError):
            path.rmdir()


def _command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return _clip(shlex.join([name, *sys.argv[1:]]))


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
