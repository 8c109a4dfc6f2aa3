"""`dlpipe runs`: two tiny runs that differ in their learning rate side by side, folders that are not finished
runs listed with the reason, and the HTML page opened offline in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from assets import require
from conftest import TINY_SETS, write_color_images

NO_TENSORFLOW = ("import sys; from click.testing import CliRunner; from dlpipe.pipelines.cli import main; "
                 "result = CliRunner().invoke(main, ['runs', *sys.argv[1:]]); print(result.output); "
                 "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mlflow')]; "
                 "assert not heavy, heavy[:5]; sys.exit(result.exit_code)")


@pytest.fixture(scope="module")
def runs_parent(tmp_path_factory):
    """A folder holding two tiny runs on the same data (learning rates 0.001 and 0.01), a run whose metrics.json is
    torn and a folder that holds only a config: (parent, the console's text, the page's path)."""
    from dlpipe.pipelines import api

    data = tmp_path_factory.mktemp("runs-data")
    write_color_images(data / "blue", "blue", 24, seed=2)
    write_color_images(data / "red", "red", 24, seed=1)
    parent = tmp_path_factory.mktemp("runs")
    for name, rate in (("slow", "0.001"), ("fast", "0.01")):
        api.run("image-classify", data=str(data), out=parent / name, echo=lambda _: None,
                sets=[*TINY_SETS, "export.formats=[keras]", "train.epochs=3", f"train.learning_rate={rate}"])
    shutil.copytree(parent / "slow", parent / "torn")
    (parent / "torn" / "metrics.json").write_text('{"accuracy": 0.9', encoding="utf-8")
    (parent / "unstarted").mkdir()
    shutil.copy(parent / "slow" / "config.yaml", parent / "unstarted" / "config.yaml")
    page = parent.parent / "compare" / "runs.html"
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(parent), str(parent / "missing"),
                           "--out", str(page)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return parent, done.stdout, page


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_both_runs_show_their_metric_interval_time_and_model_size(runs_parent):
    parent, console, _ = runs_parent
    for name in ("slow", "fast"):
        metrics = json.loads((parent / name / "metrics.json").read_text())
        low, high = metrics["accuracy_interval"]
        line = _line(console, f"{name} ")
        assert f"accuracy {metrics['accuracy']:.3f} ({low:.3f}-{high:.3f})" in line
        seconds = json.loads((parent / name / "report.json").read_text())["stages"]["train"]["seconds"]
        assert f" {seconds:.1f} s " in line
        size = (parent / name / "model.keras").stat().st_size
        assert line.endswith(f"model.keras {size / 1e6:.1f} MB")
        assert "image" in line


def test_the_learning_rate_is_the_one_key_that_differs(runs_parent):
    _, console, _ = runs_parent
    differences = console.split("config that differs:\n")[1].split("\n\n")[0].splitlines()
    header, rows = differences[0].split(), [row.split() for row in differences[1:]]
    assert header[0] == "key" and {"slow", "fast"} <= set(header)
    assert [row[0] for row in rows] == ["train.learning_rate"]
    values = dict(zip(header[1:], rows[0][1:]))
    assert float(values["slow"]) == 0.001 and float(values["fast"]) == 0.01


def test_folders_that_are_not_finished_runs_are_listed_with_the_reason(runs_parent):
    parent, console, _ = runs_parent
    problems = console.split("not compared or incomplete:\n")[1]
    assert re.search(rf"{re.escape(str(parent / 'torn'))}: metrics.json unreadable", problems)
    assert f"{parent / 'unstarted'}: no report.json" in problems
    assert f"{parent / 'missing'}: no such folder" in problems
    compared = console.split("config that differs")[0].splitlines()
    assert not any(line.startswith(("torn ", "unstarted ")) for line in compared)


def test_the_page_holds_the_comparison_and_opens_offline(runs_parent, tmp_path):
    from headless_page import chromium_path, visit

    parent, _, page = runs_parent
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    for name in ("slow", "fast"):
        accuracy = json.loads((parent / name / "metrics.json").read_text())["accuracy"]
        assert f"<td>{name}</td>" in text and f"accuracy {accuracy:.3f}" in text
    assert "<td>train.learning_rate</td>" in text and "<td>0.01</td>" in text
    assert "metrics.json unreadable" in text
    chromium = chromium_path()
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    seen = visit(page.as_uri(), tmp_path / "profile", chromium)
    assert seen.requested == [page.as_uri()]  # the page alone: nothing else fetched, nothing off the machine
    assert seen.failed == []
