"""`dlpipe predict --engine ray` against a local Ray instance that the test starts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dlpipe.pipelines.cli import main
from dlpipe.models.tasks import get_task
from assets import require_module

ray = require_module("ray")
pytestmark = pytest.mark.long  # a Ray instance of its own: outside the 10-minute suite (bench/long_checks.py)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_gives_the_local_engine_rows_and_resumes(trained_run, tmp_path, local_ray):
    root, run = trained_run
    paths = get_task("image").collect_inputs([str(root)]).ids[:20]
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    local_rows = tmp_path / "local.jsonl"
    CliRunner().invoke(main, ["predict", str(run), str(listing), "--out", str(local_rows)], catch_exceptions=False)
    ray_rows = tmp_path / "ray.jsonl"
    ray_rows.write_text("".join(line + "\n" for line in local_rows.read_text().splitlines()[:5]))  # an earlier, killed job
    result = CliRunner().invoke(main, ["predict", str(run), str(listing), "--out", str(ray_rows), "--engine", "ray",
                                       "--batch-size", "8"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "15 classified, 0 failed, 5 already done" in result.output
    expected = [json.loads(line) for line in local_rows.read_text().splitlines()]
    got = [json.loads(line) for line in ray_rows.read_text().splitlines()]
    assert [row["input"] for row in got] == paths
    assert [row["label"] for row in got] == [row["label"] for row in expected]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(got, expected))
