"""Benchmark: `dlpipe serve` under request-head attacks (issue 27): the server's peak RSS and the answers.

One command, from the repository root with the venv active:

    python bench/hostile_headers.py [--model MODEL] [--only big,big64,burst64,many,many64,slow,idle64]

Starts `dlpipe serve MODEL` (by default a 16 px `.tflite` image model built here) with a bearer token, then
sends each attack in turn on raw sockets, unauthenticated: one 200 MiB header (alone, and beside 64 clients
sending authenticated :predict requests), 4 attackers repeating 200 MiB headers for 20 s beside the clients,
1,000,000 headers, a header a byte a second, 2,000 connections holding an unfinished request line for 15 s.
Peak RSS is the server's VmHWM, reset through /proc/PID/clear_refs before each attack; the clients count
their answered and failed requests. The rows of SECURITY.md were measured with this.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

TOKEN = "bench-token"
MIB = 1 << 20


def build_tiny_model(folder: Path) -> Path:
    """The 16 px untrained .tflite image model of the tests' tiny_tflite fixture (TensorFlow needed)."""
    import keras
    import tensorflow as tf

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import artifacts

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    (folder / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    artifacts.write_side_files(folder, artifacts.Bundle("image", ["blue", "red"], ImagePreprocessing(image_size=16)))
    return folder


def predict_body() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 10, 10)).save(buffer, "JPEG")
    return json.dumps({"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]}).encode()


class Target:
    """The server under attack: its port, pid and model name."""

    def __init__(self, model: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(os.environ, DLPIPE_TOKEN=TOKEN, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen([sys.executable, "-m", "dlpipe", "serve", model, "--port", str(self.port),
                                         "--watch-seconds", "0"], env=env, stderr=subprocess.DEVNULL)
        self.body = predict_body()
        for _ in range(600):
            try:
                self.name = json.loads(self.request("GET", "/healthz")[1])["models"][0]
                break
            except OSError:
                time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes | None = None, connection=None) -> tuple[int, bytes]:
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, path, body, {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()

    def status(self, key: str) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(key)) / 1024

    def reset_peak(self) -> None:
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as refs:
            refs.write("5")


def clients(target: Target, count: int, stop: threading.Event, tally: Counter) -> list[threading.Thread]:
    """`count` clients sending :predict on kept-alive connections until `stop`; answers counted in `tally`."""

    def client() -> None:
        connection = None
        while not stop.is_set():
            try:
                connection = connection or http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
                status, _ = target.request("POST", f"/v1/models/{target.name}:predict", target.body, connection)
                tally["answered" if status == 200 else f"status {status}"] += 1
            except (OSError, http.client.HTTPException) as error:
                tally[f"failed: {type(error).__name__}"] += 1
                connection = None

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def first_line(sock: socket.socket) -> str:
    try:
        return sock.recv(200).split(b"\r\n")[0].decode() or "closed"
    except OSError as error:
        return f"no answer ({type(error).__name__})"


def big_header(port: int, size: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sent, started = 0, time.time()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < size:
                sock.sendall(b"a" * MIB)
                sent += MIB
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass
        return f"{first_line(sock)} after {time.time() - started:.1f} s, {sent / 1e6:.0f} MB sent"


def repeated_big_headers(port: int, attackers: int, size: int, seconds: float) -> str:
    answers, end = Counter(), time.time() + seconds

    def attacker() -> None:
        while time.time() < end:
            answers[big_header(port, size).split(" after")[0]] += 1

    threads = [threading.Thread(target=attacker) for _ in range(attackers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"{attackers} attackers for {seconds:g} s: {dict(answers)}"


def many_headers(port: int, count: int) -> str:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(count)) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(head)
        except OSError:
            pass
        return f"{first_line(sock)} ({len(head) / 1e6:.1f} MB of headers)"


def slow_header(port: int, seconds: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        started = time.time()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * seconds:
            if time.time() - started > seconds:
                break
            try:
                sock.send(bytes([byte]))
                got = sock.recv(200)  # waits up to a second: the attack's pace
            except TimeoutError:
                continue
            except OSError as error:
                return f"closed after {time.time() - started:.1f} s ({type(error).__name__})"
            line = got.split(b"\r\n")[0].decode() or "closed"
            return f"{line} after {time.time() - started:.1f} s"
    return f"still open after {seconds} s"


def unfinished_heads(port: int, count: int, seconds: float) -> str:
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in sockets:
        sock.send(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(seconds)
    states = Counter()
    for sock in sockets:
        sock.setblocking(False)
        try:
            got = sock.recv(100)
            states[got.split(b"\r\n")[0].decode() if got else "closed"] += 1
        except BlockingIOError:
            states["still open"] += 1
        except OSError:
            states["reset"] += 1
        sock.close()
    return f"after {seconds:g} s: {dict(states)}"


def scenario(target: Target, name: str, attack, with_clients: int = 0) -> None:
    target.reset_peak()
    idle = target.status("VmRSS")
    stop, tally = threading.Event(), Counter()
    threads = clients(target, with_clients, stop, tally)
    time.sleep(1 if with_clients else 0)
    answer = attack()
    stop.set()
    for thread in threads:
        thread.join()
    peak = target.status("VmHWM")
    beside = f"; clients: {dict(tally)}" if with_clients else ""
    print(f"| {name} | RSS {idle:.0f} MB, peak {peak:.0f} MB (+{peak - idle:.0f}) | {answer}{beside} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="what `dlpipe serve` serves (default: a tiny .tflite model built here)")
    parser.add_argument("--only", default="big,big64,burst64,many,many64,slow,idle64")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as folder:
        target = Target(args.model or str(build_tiny_model(Path(folder))))
        port = target.port
        for _ in range(20):
            target.request("POST", f"/v1/models/{target.name}:predict", target.body)
        attacks = [("big", "200 MiB header", lambda: big_header(port, 200 * MIB), 0),
                   ("big64", "200 MiB header + 64 clients", lambda: big_header(port, 200 * MIB), 64),
                   ("burst64", "4 attackers repeating 200 MiB headers + 64 clients",
                    lambda: repeated_big_headers(port, 4, 200 * MIB, 20), 64),
                   ("many", "1,000,000 headers", lambda: many_headers(port, 1_000_000), 0),
                   ("many64", "1,000,000 headers + 64 clients", lambda: many_headers(port, 1_000_000), 64),
                   ("slow", "a header byte a second", lambda: slow_header(port, 30), 0),
                   ("idle64", "2,000 unfinished heads + 64 clients", lambda: unfinished_heads(port, 2000, 15), 64)]
        try:
            for key, name, attack, with_clients in attacks:
                if key in only:
                    scenario(target, name, attack, with_clients)
            print(f"server still running: {target.process.poll() is None}")
        finally:
            target.process.terminate()
            target.process.wait(30)


if __name__ == "__main__":
    main()
