"""Benchmark: the HTTP server under a bounded loopback load, dynamic batching on and off.

One command, from the repository root with the venv active, after the hymenoptera benchmark has
trained a model (or give any image run folder):

    python bench/serving_load.py [--run RUN_DIR] [--artifact auto] [--requests 384]

For batching on (max batch 8, the default, no wait: only what is already queued joins a batch, TF
Serving's CPU advice), on with a 5 ms wait, off (max batch 1), and any `bN` (max batch N, no wait), each
with one batch thread and LiteRT
interpreter per core, starts `dlpipe serve` on 127.0.0.1 in a subprocess, then sends a fixed number
of :predict requests (one photo each) from 1, 8 and 32 concurrent clients and reports requests/s,
p50/p99 latency and the load average of the machine before the row (other work on it). Only
loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx  # only to wait for the server to come up

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
DEFAULT_RUN = ROOT / "bench" / "results" / "hymenoptera-efficientnet_lite0__ImageNet__2_phase_"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load(url: str, bodies: list[bytes], clients: int, total: int) -> tuple[float, list[float], int]:
    """(seconds, latencies, failures) for `total` requests from `clients` concurrent keep-alive connections.

    aiohttp, not httpx: the clients share the server's cores, and aiohttp spends about a third of the CPU
    per request.
    """
    import aiohttp

    latencies: list[float] = []
    failures = 0
    counter = iter(range(total))
    headers = {"content-type": "application/json"}

    async def client(session: "aiohttp.ClientSession") -> None:
        nonlocal failures
        for index in counter:
            started = time.perf_counter()
            async with session.post(url, data=bodies[index % len(bodies)], headers=headers) as response:
                await response.read()
                failures += response.status != 200
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - started, latencies, failures


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def serve(run: str, port: int, batch: int, wait_ms: float, artifact: str, batch_threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "dlpipe", "serve", run, "--port", str(port), "--max-batch-size", str(batch),
               "--max-wait-ms", str(wait_ms), "--watch-seconds", "0", "--artifact", artifact,
               "--batch-threads", str(batch_threads)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"server did not start: {process.stderr.read()[-2000:]}")


def main() -> None:
    from dlpipe.serving.batching_defaults import BATCH_THREADS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--artifact", default="auto", help="which artifact of the run folder serves (auto: int8 here)")
    parser.add_argument("--requests", type=int, default=384)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--modes", default="on,wait,off",
                        help="on (8, 0 ms: the default), wait (8, 5 ms), off (1), or bN: max batch N, 0 ms (e.g. b8)")
    parser.add_argument("--batch-threads", type=int, default=BATCH_THREADS,
                        help="the server's --batch-threads: model calls at once, each on its own interpreter (0: one per core)")
    args = parser.parse_args()
    photos = sorted(PHOTOS.glob("*/*.jpg"))[:32]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()}]}).encode() for p in photos]
    name = Path(args.run).resolve().name
    modes = {"on": ("on (8, 0 ms)", 8, 0.0), "wait": ("on (8, 5 ms)", 8, 5.0), "off": ("off (1)", 1, 0.0)}
    rows = []
    for mode in args.modes.split(","):
        label, batch, wait = modes[mode] if mode in modes else (f"on ({int(mode[1:])}, 0 ms)", int(mode[1:]), 0.0)
        port = free_port()
        server = serve(args.run, port, batch, wait, args.artifact, args.batch_threads)
        url = f"http://127.0.0.1:{port}/v1/models/{name}:predict"
        try:
            asyncio.run(load(url, bodies, 8, 64))  # warm up
            for clients in (int(c) for c in args.clients.split(",")):
                busy = os.getloadavg()[0]
                server_cpu, client_cpu = cpu_seconds(server.pid), cpu_seconds()
                seconds, latencies, failures = asyncio.run(load(url, bodies, clients, args.requests))
                server_cpu = (cpu_seconds(server.pid) - server_cpu) / args.requests * 1000
                client_cpu = (cpu_seconds() - client_cpu) / args.requests * 1000
                latencies.sort()
                p50 = latencies[len(latencies) // 2] * 1000
                p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
                rows.append((label, clients, args.requests / seconds, p50, p99, failures, busy, server_cpu, client_cpu))
                print(rows[-1], flush=True)
        finally:
            server.terminate()
            server.wait(30)
    print(f"\n{date.today()} · `python bench/serving_load.py --artifact {args.artifact} --modes {args.modes} --clients {args.clients} --batch-threads {args.batch_threads}` · {args.requests} requests "
          f"per row, one photo each · server and clients share {os.cpu_count()} CPU cores\n")
    print("| batching | clients | requests/s | p50 ms | p99 ms | failed | load before | server CPU ms/req | "
          "client CPU ms/req |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, clients, rate, p50, p99, failures, busy, server_cpu, client_cpu in rows:
        print(f"| {label} | {clients} | {rate:.1f} | {p50:.0f} | {p99:.0f} | {failures} | {busy:.1f} | "
              f"{server_cpu:.1f} | {client_cpu:.1f} |")


if __name__ == "__main__":
    main()
