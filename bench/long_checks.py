"""The long checks: the tests marked `long` (setup.cfg), which README's 10-minute suite leaves out (issue 25: "keep
them tiny; long checks belong in bench/"). Each costs 10-70 s alone: a cluster or several processes (distributed
workers killed and resumed, Ray Train and Ray batch inference, `dlpipe tune` workers with one killed), k-fold runs and
searches, reduced precision and XLA emulated on the CPU, the quantization search, the pages in Chromium, MPNet,
MediaPipe's TextClassifier on the words tokenizer's files, and the real-weights fine-tunes (MiniLM, the detector's
COCO start, its 320-px training step and conversion). CI runs them after the suite, so they still gate a
change; a developer runs them with one command, from the repository root with dlpipe's venv active:

    python bench/long_checks.py [-- EXTRA PYTEST ARGS]

Prints pytest's report and writes bench/results/long_checks.json (date, command, summary line, wall seconds, exit
code); exits with pytest's exit code.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "long_checks.json"


def _echo(stream, lines: list[str]) -> None:
    """Show pytest's output as it comes (the checks take minutes) and keep its non-blank lines."""
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            lines.append(line.strip().strip("= "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --), e.g. a test path")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-q", "-m", "long", *args.pytest_args]
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            _echo(process.stdout, lines)
        except KeyboardInterrupt:  # Ctrl-C or CI's timeout: pytest got it too; show the summary it prints
            process.send_signal(signal.SIGINT)
            _echo(process.stdout, lines)
    wall = time.monotonic() - started
    record = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python bench/long_checks.py " + " ".join(args.pytest_args),
              "summary": lines[-1] if lines else "", "wall_seconds": round(wall, 1), "exit_code": process.returncode}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"long checks: {record['summary']} ({wall:.0f} s wall); {RESULT.relative_to(ROOT)}")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
