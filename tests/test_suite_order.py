"""How the suite is run: conftest.SLOWEST_FIRST names modules that exist (a renamed one would silently fall back to the
end of the order), and the long checks the suite leaves out still run in CI."""

from __future__ import annotations

from pathlib import Path

from conftest import SLOWEST_FIRST


def test_every_module_in_the_order_exists():
    tests = Path(__file__).parent
    assert [name for name in SLOWEST_FIRST if not (tests / name).is_file()] == []
    assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)


def test_the_long_checks_the_suite_leaves_out_still_run_in_ci():
    """setup.cfg deselects the `long` mark from README's test command; CI must then run them (bench/long_checks.py),
    or they would silently stop gating anything."""
    import configparser

    root = Path(__file__).parent.parent
    pytest_config = configparser.ConfigParser()
    pytest_config.read(root / "setup.cfg")
    assert '-m "not long"' in pytest_config["tool:pytest"]["addopts"]
    assert "long:" in pytest_config["tool:pytest"]["markers"]
    steps = [line for line in (root / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    suite = next(i for i, line in enumerate(steps) if "python -m pytest -q" in line)
    assert any("python bench/long_checks.py" in line for line in steps[suite + 1:]), steps
