"""A throw-away PostgreSQL server for a test: initdb into a fresh folder, pg_ctl start on a free port, stop after.

PostgreSQL refuses to run as root, so as root the server runs as the Debian package's `postgres` user, in a
folder under the system temp dir (pytest's tmp_path sits in a root-only folder that user cannot enter). Where no
server can be started the test skips with the reason, and fails under CI (tests/assets.py).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from assets import require, require_module

HOW = "Debian package postgresql (scripts/setup.sh installs it) and psycopg (pip install -e '.[test]')"


def _binary(name: str) -> str | None:
    """Debian keeps the server's tools in /usr/lib/postgresql/VERSION/bin, off the PATH."""
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_server(tmp_path: Path) -> Iterator[str]:
    """Yield a postgresql:// URL (database `postgres`, user `dlpipe`, no password) of a server for this test."""
    require_module("psycopg", HOW)
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    require(bool(initdb and pg_ctl), "PostgreSQL server (initdb, pg_ctl)", HOW)
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            require(False, "a non-root user `postgres` to run the PostgreSQL server as", HOW)
    root = Path(tempfile.mkdtemp(prefix="dlpipe-pg-")) if user else tmp_path / "pg"
    root.mkdir(exist_ok=True)
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)
    run_as = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    port, data = _free_port(), root / "data"
    try:
        made = subprocess.run([initdb, "-D", str(data), "-A", "trust", "-U", "dlpipe", "-E", "UTF8", "--no-sync"],
                              capture_output=True, text=True, cwd=root, check=False, **run_as)
        require(made.returncode == 0, "a PostgreSQL cluster made by initdb", f"{made.stderr.strip()[-300:]}; {HOW}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        started = subprocess.run([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w",
                                  "-t", "30", "start"], capture_output=True, text=True, cwd=root, check=False, **run_as)
        log = (root / "server.log").read_text(errors="replace")[-300:] if (root / "server.log").exists() else ""
        require(started.returncode == 0, "a PostgreSQL server started by the test", f"{log}; {HOW}")
        try:
            yield f"postgresql://dlpipe@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, cwd=root,
                           check=False, **run_as)
    finally:
        if user:
            shutil.rmtree(root, ignore_errors=True)
