"""dlpipe playground: the page learns the spiral in headless Chromium, offline, driven by URL parameters, and
`dlpipe run points` on the page's own export reaches the same test loss.

The stated setting (SPIRAL): the spiral without noise, features x, y, sin x, sin y, two tanh layers of 8,
learning rate 0.03, batch 10, 200 epochs, seed 1. Measured (BENCHMARKS.md): test loss 0.019-0.040 in the
browser over seeds 1-4 (about 10 s), and 0.03 with Keras on seed 1's export.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from assets import require

SPIRAL = ("dataset=spiral&noise=0&features=x,y,sinx,siny&layers=8,8&activation=tanh&lr=0.03&batch=10"
          "&epochs=200&seed=1&autostart=1")
TARGET = 0.1  # issue 30: test loss <= 0.1 on the spiral
# Keras draws other initial weights and another shuffling order than the page, so the two runs agree only up to
# the seed-to-seed spread of this setting: 0.02-0.04 in the browser, 0.02-0.05 in Keras (seeds 1-4, BENCHMARKS.md)
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def spiral_visit(tmp_path_factory):
    """The page, written by `dlpipe playground`, after SPIRAL's 200 epochs: (visit, page folder)."""
    from click.testing import CliRunner

    from dlpipe.pipelines.cli import main
    from dlpipe.pipelines.playground import tfjs_bundle
    from headless_page import chromium_path, visit

    chromium = chromium_path()
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    require(tfjs_bundle().is_file(), f"TensorFlow.js ({tfjs_bundle()})", "scripts/setup.sh (npm install --prefix "
                                                                        ".web-vendor @tensorflow/tfjs)")
    folder = tmp_path_factory.mktemp("playground")
    result = CliRunner().invoke(main, ["playground", "--out", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0 and "index.html" in result.output
    seen = visit((folder / "index.html").as_uri() + "?" + SPIRAL, tmp_path_factory.mktemp("profile"), chromium,
                 until="document.body.dataset.done === '1' || window.playground.error", wait_s=180,
                 read="{epoch: playground.epoch, testLoss: playground.testLoss, trainLoss: playground.trainLoss, "
                      "error: playground.error, history: playground.history.length, files: playground.exportFiles()}")
    return seen, folder


def test_the_page_learns_the_spiral_offline(spiral_visit):
    from PIL import Image

    seen, folder = spiral_visit
    state = seen.value
    assert state["error"] is None
    assert state["epoch"] == 200 and state["history"] == 201  # the start and every epoch measured
    assert state["testLoss"] <= TARGET, state
    assert all(url.startswith("file:") for url in seen.requested), seen.requested  # nothing off the machine
    assert {Path(url.split("?")[0]).name for url in seen.requested} == {"index.html", "tf.min.js", "playground.js"}
    assert seen.failed == []
    shot = Image.open(io.BytesIO(seen.screenshot)).convert("RGB")
    colours = set(shot.getdata())
    assert len(colours) > 64  # controls, text and the heat map drawn
    assert (8, 119, 189) in colours and (245, 147, 34) in colours  # both classes' points are on the canvas


def test_a_bad_url_setting_is_named_on_the_page(spiral_visit, tmp_path):
    from headless_page import chromium_path, visit

    _, folder = spiral_visit
    seen = visit((folder / "index.html").as_uri() + "?dataset=moons&layers=8,0", tmp_path / "profile", chromium_path(),
                 until="document.readyState === 'complete'", read="{error: playground.error, epoch: playground.epoch, "
                                                                 "shown: document.getElementById('problems').textContent}")
    assert "dataset must be one of circle, xor, gauss, spiral" in seen.value["error"] and "layers" in seen.value["error"]
    assert seen.value["error"] in seen.value["shown"] and seen.value["epoch"] == 0  # named, and nothing trained


@pytest.mark.long  # trains a points run from the page's exported files (~19 s)
def test_dlpipe_run_points_on_the_export_reaches_the_same_test_loss(spiral_visit, tmp_path):
    import json

    import yaml

    from dlpipe.pipelines import api

    seen, _ = spiral_visit
    files = seen.value["files"]
    (tmp_path / "points.csv").write_text(files["csv"], encoding="utf-8")
    (tmp_path / "points.yaml").write_text(files["yaml"], encoding="utf-8")
    config = yaml.safe_load(files["yaml"])
    assert config["model"] == {"features": ["x", "y", "sinx", "siny"], "layers": [8, 8], "activation": "tanh",
                               "l1": 0, "l2": 0}
    assert config["train"] == {"epochs": 200, "batch_size": 10, "learning_rate": 0.03}
    assert files["csv"].count(",train\n") == files["csv"].count(",test\n") == 250
    out = tmp_path / "run"
    api.run("points", data=str(tmp_path / "points.csv"), config_file=tmp_path / "points.yaml", out=out,
            echo=lambda _: None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_points"] == 250 and metrics["epochs"] == 200
    assert abs(metrics["test_loss"] - seen.value["testLoss"]) <= TOLERANCE, (metrics, seen.value["testLoss"])
    assert metrics["test_loss"] <= TARGET + TOLERANCE and metrics["test_accuracy"] >= 0.95
    assert (out / "model.keras").is_file()
