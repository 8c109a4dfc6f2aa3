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
