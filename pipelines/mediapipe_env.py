"""The separate MediaPipe environment `dlpipe check-device` runs exports in, and the one call into it.

MediaPipe cannot share dlpipe's environment: its opencv-contrib-python is a second `cv2` beside dlpipe's
opencv-python-headless, and it pins its own NumPy and protobuf. scripts/setup.sh creates `.venv-mediapipe`
beside the checkout; dlpipe talks to it only through `models/mediapipe_worker.py` run there as a
subprocess, JSON files in and out, and never imports mediapipe itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from dlpipe.errors import DlpipeError

PYTHON_ENV = "DLPIPE_MEDIAPIPE_PYTHON"  # the MediaPipe environment's interpreter, overriding the default
MEDIAPIPE_VERSION = "1.2.3"  # what scripts/setup.sh installs (keep the two equal)
CHECKOUT = Path(__file__).resolve().parents[1]  # the repository root of an editable install
IN_CHECKOUT = (CHECKOUT / "scripts" / "setup.sh").is_file()  # else an installed package: look in the current folder
SETUP_HINT = (f"create it with `python -m venv .venv-mediapipe && .venv-mediapipe/bin/pip install "
              f"mediapipe=={MEDIAPIPE_VERSION}` in {CHECKOUT if IN_CHECKOUT else 'the folder you run dlpipe from'}"
              f"{' (bash scripts/setup.sh does)' if IN_CHECKOUT else ''}, or point --mediapipe-python or "
              f"${PYTHON_ENV} at its python")


def _worker() -> Path:
    """The worker script: models/mediapipe_worker.py in a checkout, dlpipe/models/ when installed."""
    from dlpipe import models

    return Path(models.__file__).resolve().parent / "mediapipe_worker.py"


def mediapipe_python(given: str | None = None) -> Path:
    """The MediaPipe environment's interpreter: `given`, else $DLPIPE_MEDIAPIPE_PYTHON, else .venv-mediapipe
    beside the checkout or in the current folder; a one-line error saying how to create it when there is none."""
    if given or os.environ.get(PYTHON_ENV):
        candidates = [Path(given or os.environ[PYTHON_ENV])]
    else:
        folders = (CHECKOUT, Path.cwd()) if IN_CHECKOUT else (Path.cwd(),)
        candidates = [folder / ".venv-mediapipe" / "bin" / "python" for folder in folders]
    for python in candidates:
        if python.is_file():
            return python
    raise DlpipeError(f"{candidates[0]}: no MediaPipe environment there; {SETUP_HINT}")


def run_worker(python: Path, kind: str, models: list[Path], inputs: list[str], timeout: float | None = None,
               **options: Any) -> dict:
    """MediaPipe's top answer per input for each model, or its boxes for "detect" (see models/mediapipe_worker.py
    for the answer's shape and the `options` a job takes, e.g. score_threshold)."""
    timeout = timeout or 120 + 2.0 * len(inputs) * len(models)
    with tempfile.TemporaryDirectory(prefix="dlpipe-mediapipe-") as folder:
        job, answer = Path(folder) / "job.json", Path(folder) / "answer.json"
        job.write_text(json.dumps({"kind": kind, "models": [str(m) for m in models], "inputs": inputs, **options}),
                       encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        try:
            done = subprocess.run([str(python), str(_worker()), str(job), str(answer)], capture_output=True,
                                  text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise DlpipeError(f"{python}: MediaPipe did not answer within {timeout:.0f} s") from None
        except OSError as error:
            raise DlpipeError(f"{python}: cannot run it ({error.strerror}); {SETUP_HINT}") from None
        if done.returncode or not answer.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            hint = f"; {SETUP_HINT}" if "No module named" in last else ""
            raise DlpipeError(f"{python}: the MediaPipe worker failed ({last}){hint}")
        result: dict[str, Any] = json.loads(answer.read_text(encoding="utf-8"))
        return result
