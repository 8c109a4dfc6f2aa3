"""A request's head (request line and headers) is bounded in size, count and time before auth or the body.

A real server (uvicorn in a thread, configured as `dlpipe serve` configures it) on a free loopback port, with
small limits and a one-second deadline; the bad requests are written on raw sockets, as an attacker would.
"""

from __future__ import annotations

import base64
import io
import json
import select
import socket
import time

import httpx
import pytest

from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import ServerSettings
from live_server import serving

LIMITS = ServerSettings(token="s3cret", max_header_bytes=4096, max_headers=20, header_timeout_s=1.0)
AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture(scope="module")
def live(tiny_tflite):
    """(base URL, port, model name) of the app served with LIMITS."""
    repository = ModelRepository(tiny_tflite)
    with serving(repository, LIMITS) as (base, port):
        yield base, port, repository.names()[0]


def send(port: int, head: bytes, tail_bytes: int = 0) -> tuple[bytes, int]:
    """Write `head`, then `tail_bytes` more of one header value, as long as the server reads; (answer, bytes sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sent = 0
        try:
            sock.sendall(head)
            sent = len(head)
            chunk = b"a" * (1 << 20)
            while sent < len(head) + tail_bytes:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection: it stopped reading
            pass
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except OSError:
            pass
    return answer, sent


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:  # "5": the peak RSS starts again from the current RSS
        refs.write("5")


def test_an_oversized_header_is_refused_without_reading_it(live):
    _, port, _ = live
    size = 64 << 20  # read whole, this header would add at least its size to the server's memory
    reset_peak_rss()
    before = peak_rss_mb()
    answer, sent = send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", size)
    grown = peak_rss_mb() - before
    assert status_and_error(answer) == (431, "request line and headers over the limit of 4096 bytes")
    assert b"connection: close" in answer
    # the server stopped reading: what got through before the reset is what the kernel's socket buffers held
    assert sent < size / 2, f"{sent / 1e6:.0f} MB of {size / 1e6:.0f} MB were read"
    assert grown < 16, f"peak RSS grew {grown:.0f} MB under a {size >> 20} MB header"


def test_too_many_headers_or_a_long_request_line_are_refused(live):
    _, port, _ = live
    headers = b"".join(b"X-%d: v\r\n" % index for index in range(21))
    answer, _ = send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_and_error(answer) == (431, "more than 20 request headers")
    answer, _ = send(port, b"GET /healthz?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_and_error(answer) == (414, "request line over the limit of 4096 bytes")


def test_a_normal_request_is_answered_and_auth_still_applies(live):
    base, port, name = live
    headers = {**AUTH, **{f"X-Extra-{index}": "v" * 100 for index in range(10)}}
    assert httpx.get(f"{base}/v1/models/{name}", headers=headers).status_code == 200
    assert httpx.get(f"{base}/v1/models/{name}").status_code == 401
    with httpx.Client(headers=AUTH) as client:  # a kept-alive connection idle past the deadline between requests
        assert client.get(f"{base}/v1/models/{name}").status_code == 200
        time.sleep(1.3)
        assert client.get(f"{base}/v1/models/{name}").status_code == 200
    # a body larger than the head's limit, arriving with the head in one write, is the body's business, not the head's
    body = json.dumps({"instances": [{"b64": red_jpeg()}]}).encode() + b" " * 200_000
    head = (f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer, _ = send(port, head + body)
    assert answer.startswith(b"HTTP/1.1 200") and b'"predictions"' in answer


def test_a_slow_client_is_cut_off_while_others_are_answered(live):
    base, port, name = live
    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    started = time.monotonic()
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    answered = 0
    for byte in b"X-Slow: " + b"a" * 100:  # a byte every 0.1 s: it would take 10 s to finish
        if select.select([slow], [], [], 0)[0]:  # the server answered, or closed
            break
        slow.sendall(bytes([byte]))
        response = httpx.get(f"{base}/v1/models/{name}", headers=AUTH)
        answered += response.status_code == 200
        time.sleep(0.1)
    cut_after = time.monotonic() - started
    answer = slow.recv(65536)
    assert status_and_error(answer) == (408, "request headers not complete within 1 s")
    assert 0.9 < cut_after < 4, cut_after
    assert answered >= 3
    assert silent.recv(100) == b""  # connected but never sent a byte: closed too, without an answer
    slow.close()
    silent.close()


def red_jpeg() -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 10, 10)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_serve_options_default_to_the_settings_limits():
    from dlpipe.pipelines.cli import main

    options = {param.name: param.default for param in main.commands["serve"].params}
    settings = ServerSettings()
    assert options["max_header_kb"] * 1024 == settings.max_header_bytes == 16 * 1024
    assert options["max_headers"] == settings.max_headers == 100
    assert options["header_timeout"] == settings.header_timeout_s == 10.0
