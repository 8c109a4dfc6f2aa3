"""Missing set-up assets skip locally and fail under CI, naming the asset (issue 25)."""

from __future__ import annotations

import pytest

from assets import require, require_module


def test_a_missing_asset_skips_locally_with_its_reason(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="required asset missing: chromium on PATH"):
        require(False, "chromium on PATH", "apt-get install chromium")
    require(True, "chromium on PATH", "apt-get install chromium")  # present: nothing happens


def test_under_ci_a_missing_asset_fails_naming_it(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI: required asset missing: MediaPipe environment"):
        require(False, "MediaPipe environment", "scripts/setup.sh creates .venv-mediapipe")
    with pytest.raises(pytest.fail.Exception, match="Python package no_such_package_here"):
        require_module("no_such_package_here")


def test_a_module_level_requirement_skips_the_module_locally_and_fails_it_under_ci(tmp_path):
    """`ray = require_module("ray")` at a module's top: a skip of that module, not a collection error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "test_needs_it.py").write_text("from assets import require_module\n"
                                               "require_module('no_such_package_here')\n\n"
                                               "def test_it():\n    pass\n")
    (tmp_path / "test_other.py").write_text("def test_other():\n    pass\n")  # the rest of the suite still runs
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("CI", None)

    def run(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                               "-rs", str(tmp_path)], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    local = run()
    assert local.returncode == 0 and "1 passed, 1 skipped" in local.stdout, local.stdout + local.stderr
    assert "Python package no_such_package_here" in local.stdout
    ci = run(CI="true")
    assert ci.returncode != 0 and "CI: required asset missing: Python package no_such_package_here" in ci.stdout, \
        ci.stdout + ci.stderr
