"""Benchmark: what `dlpipe run --track mlflow` costs a run (issue 30, item 3).

One command, from the repository root with the venv active (needs `pip install -e '.[track]'`):

    python bench/tracking_overhead.py [--repeats 2] [--epochs 8]

Trains the test suite's tiny image run (tests/conftest.py TINY_SETS: small_cnn at 32 px on 48 generated photos)
once to warm up, then untracked and tracked into a fresh SQLite store, alternately, in one process; prints each
wall time. The tracked run's extra time is the tracker's own: importing mlflow and its store once per process,
one log call per epoch, the final metrics and artifacts.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("tiny_sets", ROOT / "tests" / "conftest.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    from dlpipe.pipelines import api

    with tempfile.TemporaryDirectory(prefix="dlpipe-track-bench-") as folder:
        work = Path(folder)
        tiny.write_color_images(work / "data" / "blue", "blue", 24, seed=2)
        tiny.write_color_images(work / "data" / "red", "red", 24, seed=1)
        sets = [*tiny.TINY_SETS, "export.formats=[keras]", f"train.epochs={args.epochs}"]

        def timed(name: str, track: str | None) -> float:
            started = time.perf_counter()
            api.run("image-classify", data=str(work / "data"), out=work / "runs" / name, sets=sets,
                    echo=lambda _: None, track=track)
            return time.perf_counter() - started

        timed("warm-up", None)
        for repeat in range(args.repeats):
            for track in (None, "mlflow"):
                seconds = timed(f"{track or 'untracked'}-{repeat}", track)
                print(f"{track or 'untracked'} run {repeat}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
