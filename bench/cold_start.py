"""Benchmark (issue 26): how long a fresh `dlpipe` process takes to answer, before and after the TensorFlow-free
.tflite path.

Wall time from the shell (process start to exit, or to the first HTTP answer for `dlpipe serve`), median of
`--rounds` runs of each command, for the current tree ("after") and for a checkout of the commit before
("before", `--before-tree`: a `git worktree add DIR COMMIT` of it, run with this same venv):

    python bench/cold_start.py --image-run RUN --text-tflite FILE.tflite --before-tree /tmp/wt_f [--rounds 5]

  1. dlpipe predict RUN/model_int8.tflite photo.jpg     (the default image run's int8 file)
  2. dlpipe predict TEXT.tflite sentences.txt            (a text .tflite: one sentence)
  3. dlpipe predict RUN photo.jpg                       (`--artifact auto` picks the int8 file)
  4. dlpipe serve RUN, from start to its first answer to one photo

Each round runs every (command, tree) pair once in a shuffled order, so both trees see the same load on a
shared machine. The checkout is imported through a folder of links named `dlpipe` put first on PYTHONPATH
(the editable install's finder comes after it), from a working directory outside both trees. Prints a
markdown table and writes the figures as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = {"data": "data", "models": "models", "pipelines": "pipelines", "serving": "serving"}
PHOTO = Path("/work/shared/data/hymenoptera/train/ants/0013035.jpg")


def package_links(tree: Path, into: Path) -> Path:
    """A folder holding a `dlpipe` package of links into `tree` (its dlpipe/ files, and data/, models/, ... as the
    sub-packages setup.cfg maps): on PYTHONPATH, Python imports that tree's dlpipe instead of the installed one."""
    package = into / "dlpipe"
    package.mkdir(parents=True, exist_ok=True)
    for item in (tree / "dlpipe").iterdir():
        (package / item.name).symlink_to(item)
    for name, folder in PACKAGE_FOLDERS.items():
        (package / name).symlink_to(tree / folder)
    return into


def environment(pythonpath: Path | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def timed_command(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from starting `python -m dlpipe ARGS` to its exit (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlpipe", *args], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dlpipe {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_serve(model: Path, env: dict[str, str], cwd: Path, timeout: float = 300.0) -> float:
    """Seconds from starting `dlpipe serve MODEL` to its first answer to one photo (polled every 20 ms)."""
    port = free_port()
    body = json.dumps({"instances": [{"b64": base64.b64encode(PHOTO.read_bytes()).decode()}]}).encode()
    name = model.stem if model.is_file() else model.resolve().name  # the name `dlpipe serve` gives it
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{name}:predict", body,
                                     {"Content-Type": "application/json"})
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "dlpipe", "serve", str(model), "--port", str(port),
                               "--watch-seconds", "0"], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if server.poll() is not None:
                raise SystemExit(f"dlpipe serve {model} exited with {server.returncode}")
            try:
                if json.loads(urllib.request.urlopen(request, timeout=30).read()).get("predictions"):
                    return time.perf_counter() - started
            except OSError:  # not listening yet
                pass
            time.sleep(0.02)
        raise SystemExit(f"dlpipe serve {model} did not answer within {timeout:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=60)


def measurements(image_run: Path, text_tflite: Path, sentences: Path) -> dict[str, tuple[str, list[str] | Path]]:
    return {
        "predict model_int8.tflite photo.jpg": ("cli", ["predict", str(image_run / "model_int8.tflite"), str(PHOTO)]),
        f"predict {text_tflite.name} (text, one sentence)": ("cli", ["predict", str(text_tflite), str(sentences)]),
        "predict RUN photo.jpg (auto: int8)": ("cli", ["predict", str(image_run), str(PHOTO)]),
        "serve RUN: start to first answer": ("serve", image_run),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-run", type=Path, required=True, help="a default image-classify run (model_int8.tflite)")
    parser.add_argument("--text-tflite", type=Path, required=True, help="a text .tflite with its side files")
    parser.add_argument("--before-tree", type=Path, required=True, help="a worktree of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cold_start.json")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-cold-start-"))
    sentences = scratch / "sentence.txt"
    sentences.write_text("The battery lasts all day and the screen is great.\n", encoding="utf-8")
    trees = {"after": environment(None), "before": environment(package_links(args.before_tree.resolve(), scratch / "before"))}
    jobs = measurements(args.image_run.resolve(), args.text_tflite.resolve(), sentences)
    times: dict[str, dict[str, list[float]]] = {name: {tree: [] for tree in trees} for name in jobs}
    load_before = os.getloadavg()
    for round_number in range(args.rounds):
        pairs = [(name, tree) for name in jobs for tree in trees]
        random.Random(round_number).shuffle(pairs)
        for name, tree in pairs:
            kind, what = jobs[name]
            run = timed_serve if kind == "serve" else timed_command
            times[name][tree].append(run(what, trees[tree], scratch))
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    load_after = os.getloadavg()

    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)\n")
    print("| command | before: median (min-max) s | after: median (min-max) s | before / after |")
    print("|---|---|---|---|")
    summary = {}
    for name, by_tree in times.items():
        medians = {tree: statistics.median(values) for tree, values in by_tree.items()}
        cells = [f"{medians[t]:.2f} ({min(by_tree[t]):.2f}-{max(by_tree[t]):.2f})" for t in ("before", "after")]
        print(f"| `dlpipe {name}` | {cells[0]} | {cells[1]} | {medians['before'] / medians['after']:.1f}x |")
        summary[name] = {"seconds": by_tree, "median": medians}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": args.rounds, "load_average": [load_before, load_after],
                                    "results": summary}, indent=2))


if __name__ == "__main__":
    main()
