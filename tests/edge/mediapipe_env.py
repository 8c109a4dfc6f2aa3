"""Drive tests/edge/mediapipe_runner.py in the .venv-mediapipe environment from pytest.

Why a second environment: the real `mediapipe` package brings opencv-contrib-python
(a second `cv2`, clashing with dlpipe's opencv-python-headless) and pins its own
numpy and protobuf, so scripts/setup.sh installs it into .venv-mediapipe and the
tests talk to it through a subprocess, JSON in and out.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


from assets import require

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "mediapipe_runner.py"


def mediapipe_python() -> Path:
    """The .venv-mediapipe interpreter ($DLPIPE_MEDIAPIPE_PYTHON overrides)."""
    return Path(os.environ.get("DLPIPE_MEDIAPIPE_PYTHON", ROOT / ".venv-mediapipe" / "bin" / "python"))


def require_mediapipe() -> Path:
    """The interpreter; without one, a skip saying why (a failure under CI: tests/assets.py)."""
    python = mediapipe_python()
    require(python.is_file(), f"MediaPipe environment {python}", "scripts/setup.sh creates .venv-mediapipe "
            "(pip install mediapipe); it failed or was not run")
    probe = subprocess.run([str(python), "-c", "import mediapipe.tasks.python.vision"], capture_output=True, text=True)
    require(not probe.returncode, f"mediapipe importable in {python}",
            f"it fails with {probe.stderr.strip().splitlines()[-1:]}; rerun scripts/setup.sh")
    return python


def run_mediapipe(job: dict, timeout: float = 300) -> dict:
    """Send one job to the runner; returns its JSON answer (raises with its stderr when it fails)."""
    python = require_mediapipe()
    done = subprocess.run([str(python), str(RUNNER)], input=json.dumps(job), capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode:
        raise RuntimeError(f"mediapipe runner failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def require_browser() -> str:
    """Chromium and MediaPipe's web files for the browser checks; without them, a skip (a failure under CI)."""
    import shutil

    from dlpipe.models.export.web import vendor_root

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    require(vendor_root().is_dir(), f"MediaPipe Tasks web files ({vendor_root()})",
            "scripts/setup.sh runs npm install --prefix .web-vendor @mediapipe/tasks-vision @mediapipe/tasks-text")
    return str(chromium)
