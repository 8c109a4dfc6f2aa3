"""bench/gpu_check.sh on a machine without a GPU (issue 31, item 4): one line saying so, exit 0, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"


def _run(tmp_path: Path, path: str, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra, "PATH": path, "PYTHON": sys.executable, "GPU_CHECK_RESULT": str(tmp_path / "gpu_check.json")}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)


def test_without_a_gpu_device_it_says_so_in_one_line_and_exits_0(tmp_path):
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA device: the check would really run")
    result = _run(tmp_path, "/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "gpu_check: no GPU on this machine (no /dev/nvidia0, no nvidia-smi); nothing to check."]
    assert not (tmp_path / "gpu_check.json").exists()


def test_with_nvidia_smi_but_no_gpu_for_tensorflow_it_asks_tensorflow_and_exits_0(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (fake / "nvidia-smi").chmod(0o755)
    # CUDA_VISIBLE_DEVICES="" hides any real GPU from TensorFlow: this test is about the no-GPU answer
    result = _run(tmp_path, f"{fake}:/usr/bin:/bin", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["gpu_check: TensorFlow sees no GPU on this machine; nothing to check."]
    assert not (tmp_path / "gpu_check.json").exists()
