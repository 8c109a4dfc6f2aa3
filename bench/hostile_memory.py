"""Benchmark: peak memory of dlpipe under hostile input (issue 18).

One command, from the repository root with the venv active (a trained image run folder is needed for the
server; by default the hymenoptera run of bench/hymenoptera_transfer.py):

    python bench/hostile_memory.py [--run RUN] [--seconds 20]

Server: starts `dlpipe serve RUN` on 127.0.0.1 and, while 64 clients send normal :predict requests (one
photo each) for the whole time, sends each attack in turn: a 10,000-instance request, a 20000x20000
PNG, three of those at once, and a 2 GB chunked body without Content-Length. The server's RSS is
sampled every 20 ms (psutil); reported per attack: peak RSS, the answers, whether the server still
answers, and the normal requests' p99.
`dlpipe run`: an image-classify run (tiny settings) on a folder holding a 20000x20000 PNG and a file
whose name is not valid UTF-8, and a sentiment run on a file with lines that are not valid UTF-8; peak
RSS of each run process (sampled the same way) and what its report lists as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_load import DEFAULT_RUN, PHOTOS, free_port, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_IMAGE_SETS = ["model.backbone=small_cnn", "model.weights=none", "model.image_size=32", "train.epochs=2",
                   "train.batch_size=8", "export.formats=[keras]"]
TINY_TEXT_SETS = ["train.epochs=2", "train.batch_size=16", "train.progress=none", "preprocess.sequence_length=12",
                  "model.architecture=gru", "model.embedding_dim=16", "model.units=16", "export.formats=[keras]"]


class PeakRSS:
    """Samples a process's resident memory in a thread; `peak` since the last `reset`."""

    def __init__(self, pid: int, every: float = 0.02):
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:  # noqa: BLE001 - the process is gone: `alive` says so
                return

    def reset(self) -> None:
        self.peak = self.process.memory_info().rss

    def stop(self) -> None:
        self._stop.set()


def bomb_png(side: int = 20000) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


async def normal_load(url: str, bodies: list[bytes], clients: int, stop: asyncio.Event) -> list[tuple[float, int]]:
    import aiohttp

    results: list[tuple[float, int]] = []

    async def client(session: "aiohttp.ClientSession", number: int) -> None:
        index = number
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with session.post(url, data=bodies[index % len(bodies)],
                                        headers={"content-type": "application/json"}) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = -1
            results.append((time.perf_counter() - started, status))
            index += clients

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(client(session, n) for n in range(clients)))
    return results


async def attack(url: str, kind: str, bomb: bytes) -> list[str]:
    """Send one attack; the answers as 'status' strings (or the client-side error)."""
    import aiohttp

    async def post(session: "aiohttp.ClientSession", data) -> str:
        try:
            async with session.post(url, data=data, headers={"content-type": "application/json"}) as response:
                text = await response.text()
                return f"{response.status} {json.loads(text).get('error', '')[:70]}" if response.status != 200 else "200"
        except (aiohttp.ClientError, ConnectionError) as error:
            return f"closed ({type(error).__name__})"

    async def chunked():  # 2 GB of spaces with no Content-Length; the server should stop reading early
        chunk = b" " * (1 << 20)
        for _ in range(2048):
            yield chunk

    bomb_body = json.dumps({"instances": [{"b64": base64.b64encode(bomb).decode()}]}).encode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        if kind == "10,000 instances":
            many = json.dumps({"instances": [{"b64": base64.b64encode(tiny_png()).decode()}] * 10_000}).encode()
            return [await post(session, many)]
        if kind == "20000² PNG":
            return [await post(session, bomb_body)]
        if kind == "3 x 20000² PNG at once":
            return list(await asyncio.gather(*(post(session, bomb_body) for _ in range(3))))
        if kind == "2 GB chunked body":
            return [await post(session, chunked())]
    raise ValueError(kind)


def p99(latencies: list[float]) -> float:
    latencies = sorted(latencies)
    return latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else float("nan")


def server_rows(run: str, seconds: float, clients: int) -> list[tuple]:
    photos = sorted(PHOTOS.glob("*/*.jpg"))[:32]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()}]}).encode() for p in photos]
    bomb = bomb_png()
    port = free_port()
    server = serve(run, port, 32, 0.0, "auto")
    name = Path(run).resolve().name
    url = f"http://127.0.0.1:{port}/v1/models/{name}:predict"
    memory = PeakRSS(server.pid)
    rows = []
    try:
        for kind in ("none (normal load only)", "10,000 instances", "20000² PNG", "3 x 20000² PNG at once",
                     "2 GB chunked body"):
            async def phase():
                stop = asyncio.Event()
                load = asyncio.create_task(normal_load(url, bodies, clients, stop))
                await asyncio.sleep(seconds / 4)
                memory.reset()
                answers = ["-"] if kind.startswith("none") else await attack(url, kind, bomb)
                await asyncio.sleep(seconds * 3 / 4)
                stop.set()
                return answers, await load

            answers, normal = asyncio.run(phase())
            alive = server.poll() is None
            ok = [latency for latency, status in normal if status == 200]
            rows.append((kind, memory.peak / 2 ** 30, "; ".join(answers), alive, len(ok), len(normal) - len(ok), p99(ok)))
            print(rows[-1], flush=True)
            if not alive:
                break
    finally:
        memory.stop()
        server.terminate()
        server.wait(30)
    return rows


def run_rows(workdir: Path) -> list[tuple]:
    from PIL import Image

    images = workdir / "images"
    rng = __import__("numpy").random.default_rng(0)
    for hue, color in (("blue", (20, 40, 200)), ("red", (200, 30, 20))):
        (images / hue).mkdir(parents=True)
        for i in range(24):
            noise = rng.integers(-30, 30, (40, 40, 3))
            pixels = (__import__("numpy").clip(noise + color, 0, 255)).astype("uint8")
            Image.fromarray(pixels).save(images / hue / f"{i}.jpg")
    (images / "red" / "bomb.png").write_bytes(bomb_png())
    odd = os.fsdecode(bytes(images / "blue") + b"/caf\xe9-\xff.jpg")
    Path(odd).write_bytes((images / "blue" / "0.jpg").read_bytes())
    sentences = workdir / "sentences.txt"
    good = [f"{word} {kind} service\t{label}" for word, kind, label in
            (("great", "fast", 1), ("awful", "slow", 0), ("lovely", "kind", 1), ("terrible", "rude", 0))] * 30
    sentences.write_bytes("\n".join(good).encode() + b"\nbad \xff\xfe bytes here\t1\nmore \xc3\x28 bytes\t0\n")
    rows = []
    for label, command in (
        ("image run: 20000² PNG + non-UTF-8 file name", ["run", "image-classify", "--data", str(images)]
         + [f"--set={s}" for s in TINY_IMAGE_SETS]),
        ("sentiment run: non-UTF-8 lines", ["run", "sentiment", "--data", str(sentences)]
         + [f"--set={s}" for s in TINY_TEXT_SETS]),
    ):
        out = workdir / f"out-{len(rows)}"
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "dlpipe", *command, "--out", str(out)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        memory = PeakRSS(process.pid)
        _, stderr = process.communicate()
        memory.stop()
        done = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
        report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
        skipped = report.get("data", {}).get("skipped", [])
        rows.append((label, memory.peak / 2 ** 30, done.returncode,
                     "; ".join(f"{Path(s['path']).name}: {s['reason'][:60]}" for s in skipped) or done.stderr[-300:],
                     time.perf_counter() - started))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--skip", default="", help="server or runs, to measure only the other")
    args = parser.parse_args()
    server = [] if args.skip == "server" else server_rows(args.run, args.seconds, args.clients)
    with tempfile.TemporaryDirectory() as folder:
        runs = [] if args.skip == "runs" else run_rows(Path(folder))
    print(f"\n{date.today()} · `python bench/hostile_memory.py` · {args.clients} clients of normal requests for "
          f"{args.seconds:.0f} s per attack · {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}\n")
    print("| attack (with the normal load) | server peak RSS GB | attack answered | server alive | normal ok | "
          "normal failed | normal p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, peak, answers, alive, ok, failed, latency in server:
        print(f"| {kind} | {peak:.2f} | {answers} | {'yes' if alive else 'NO'} | {ok} | {failed} | {latency:.0f} |")
    print("\n| dlpipe run | peak RSS GB | exit | skipped (from report.json) | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for label, peak, code, skipped, seconds in runs:
        print(f"| {label} | {peak:.2f} | {code} | {skipped} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
