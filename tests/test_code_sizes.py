"""Small modules and short functions (issue 25): no source module over 400 lines, no function over 80."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / ".ci" / "check_sizes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_or_function_is_over_the_size_limits():
    assert _checker().offenders(ROOT) == []


def test_the_checker_finds_a_long_function_and_a_long_module(tmp_path):
    checker = _checker()
    (tmp_path / "models").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (tmp_path / "models" / "long.py").write_text(f"def long():\n{body}\n" + "\n" * 320)
    found = checker.offenders(tmp_path)
    assert any("function long is 86 lines" in line for line in found)
    assert any("long.py: 406 lines" in line for line in found)
