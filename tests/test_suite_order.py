"""conftest.SLOWEST_FIRST names modules that exist: a renamed one would silently fall back to the end of the order."""

from __future__ import annotations

from pathlib import Path

from conftest import SLOWEST_FIRST


def test_every_module_in_the_order_exists():
    tests = Path(__file__).parent
    assert [name for name in SLOWEST_FIRST if not (tests / name).is_file()] == []
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
