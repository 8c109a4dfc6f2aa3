"""A real `dlpipe serve` app (uvicorn in a thread, configured as the command configures it) on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

import httpx

from dlpipe.serving.http_limits import server_config
from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import ServerSettings, create_app


@contextlib.contextmanager
def serving(repository: ModelRepository, settings: ServerSettings) -> Iterator[tuple[str, int]]:
    """(base URL, port) of the app while the block runs; the server stops after it."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(repository, settings), settings, "127.0.0.1", port,
                                          log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base, port
    finally:
        server.should_exit = True
        thread.join(10)
