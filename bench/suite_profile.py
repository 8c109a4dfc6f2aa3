"""Benchmark: where the test suite's time goes, for the "suite under 10 minutes on 2 cores" target (issue 25).

One command, from the repository root with dlpipe's venv active (the suite as README.md runs it, plus a profile):

    python bench/suite_profile.py [--top 15] [-- EXTRA PYTEST ARGS]

Runs `python -m pytest -q` with bench/suite_profile/ on PYTHONPATH: its pytest plugin records each test's time,
each pipeline run (`dlpipe.pipelines.api.run`) and each outermost TensorFlow function trace inside the tests, and its
sitecustomize the CPU time of every Python process the suite starts (xdist workers and the tests' own subprocesses:
`dlpipe` commands, distributed workers, Ray's Python workers, the MediaPipe environment). The machine's busy
CPU comes from /proc/stat. Prints the tables BENCHMARKS.md shows and writes bench/results/suite_profile.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "bench" / "suite_profile"
RESULT = ROOT / "bench" / "results" / "suite_profile.json"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def read_jsonl(folder: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob(pattern)) for line in path.read_text().splitlines() if line]


def module_of(test: str) -> str:
    return test.split("::")[0]


def summarize(folder: Path, wall: float, busy_cpu: float, machine_cpu: float, summary_line: str) -> dict[str, Any]:
    records = read_jsonl(folder, "tests_*.jsonl")
    processes = read_jsonl(folder, "processes.jsonl")
    tests = [r for r in records if r["kind"] == "test"]
    runs = [r for r in records if r["kind"] == "run"]
    traces = [r for r in records if r["kind"] == "trace"]
    test_seconds = sum(r["seconds"] for r in tests)
    modules: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for record in tests:
        modules[module_of(record["test"])][0] += record["seconds"]
        modules[module_of(record["test"])][1] += record["phase"] == "call"
    run_modules: dict[str, float] = collections.Counter()
    by_pipeline: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for record in runs:
        run_modules[module_of(record["test"])] += record["seconds"]
        by_pipeline[record["pipeline"]][0] += 1
        by_pipeline[record["pipeline"]][1] += record["seconds"]
    workers = [p for p in processes if p["worker"] and not p["test"]]
    children = [p for p in processes if p["test"]]
    child_modules: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for record in children:
        child_modules[module_of(record["test"])][0] += 1
        child_modules[module_of(record["test"])][1] += record["cpu"]
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "pytest": summary_line,
        "wall_seconds": round(wall, 1), "machine_busy_cpu_seconds": round(busy_cpu, 1),
        "machine_busy_percent": round(100 * busy_cpu / machine_cpu, 1) if machine_cpu else None,
        "test_seconds": round(test_seconds, 1), "tests": sum(r["phase"] == "call" for r in tests),
        "modules": sorted(([m, round(s, 1), int(n), round(run_modules.get(m, 0.0), 1),
                            round(child_modules.get(m, [0, 0.0])[1], 1)] for m, (s, n) in modules.items()),
                          key=lambda row: -row[1]),
        "pipeline_runs": {"count": len(runs), "seconds": round(sum(r["seconds"] for r in runs), 1),
                          "by_pipeline": {k: [int(n), round(s, 1)] for k, (n, s) in
                                          sorted(by_pipeline.items(), key=lambda kv: -kv[1][1])}},
        "traces": {"count": len(traces), "seconds": round(sum(r["seconds"] for r in traces), 1)},
        "processes": {"xdist_workers_cpu_seconds": round(sum(p["cpu"] for p in workers), 1),
                      "subprocesses": len(children), "subprocesses_cpu_seconds": round(sum(p["cpu"] for p in children), 1),
                      "subprocesses_importing_tensorflow": sum(p["tensorflow"] for p in children),
                      "by_module": {k: [int(n), round(c, 1)] for k, (n, c) in
                                    sorted(child_modules.items(), key=lambda kv: -kv[1][1])}},
    }


def print_tables(result: dict[str, Any], top: int) -> None:
    share = lambda seconds: f"{100 * seconds / result['test_seconds']:.0f}%"  # noqa: E731
    print(f"\n{result['date']} · `python bench/suite_profile.py` · {result['pytest']}\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| wall time of pytest | {result['wall_seconds']:.0f} s |")
    print(f"| machine busy (all processes, /proc/stat) | {result['machine_busy_cpu_seconds']:.0f} CPU-s "
          f"({result['machine_busy_percent']}% of the cores) |")
    print(f"| sum of the tests' own times (setup + call + teardown, both workers) | {result['test_seconds']:.0f} s, "
          f"{result['tests']} tests |")
    runs = result["pipeline_runs"]
    print(f"| inside them: pipeline runs (`api.run`) | {runs['count']} runs, {runs['seconds']:.0f} s "
          f"({share(runs['seconds'])}); " + ", ".join(f"{k} {n} / {s:.0f} s" for k, (n, s) in runs["by_pipeline"].items())
          + " |")
    traces = result["traces"]
    print(f"| inside them: TensorFlow function tracing (outermost traces) | {traces['count']} traces, "
          f"{traces['seconds']:.0f} s ({share(traces['seconds'])}) |")
    procs = result["processes"]
    print(f"| CPU of the two xdist workers | {procs['xdist_workers_cpu_seconds']:.0f} CPU-s |")
    print(f"| CPU of the tests' Python subprocesses (that exited normally) | {procs['subprocesses_cpu_seconds']:.0f} "
          f"CPU-s in {procs['subprocesses']} processes, {procs['subprocesses_importing_tensorflow']} of them importing "
          "TensorFlow |")
    print(f"\n| module (top {top} by test time) | tests | test time, s | of it in pipeline runs, s | CPU of its "
          "subprocesses, s |\n| --- | ---: | ---: | ---: | ---: |")
    for module, seconds, count, in_runs, child_cpu in result["modules"][:top]:
        print(f"| {module} | {count} | {seconds:.1f} | {in_runs:.1f} | {child_cpu:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=15, help="modules listed by test time")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. a test path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite-profile-") as folder:
        env = {**os.environ, "SUITE_PROFILE_DIR": folder,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "plugin", "-p", "no:cacheprovider", *args.pytest_args]
        busy_before, total_before = cpu_jiffies()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        busy_after, total_after = cpu_jiffies()
        ticks = os.sysconf("SC_CLK_TCK")
        lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
        summary_line = lines[-1].strip("= ") if lines else f"pytest exit code {done.returncode}"
        result = summarize(Path(folder), wall, (busy_after - busy_before) / ticks, (total_after - total_before) / ticks,
                           summary_line)
    result["exit_code"] = done.returncode
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print_tables(result, args.top)
    if done.returncode:
        print(done.stdout[-3000:], file=sys.stderr)
        sys.exit(done.returncode)


if __name__ == "__main__":
    main()
