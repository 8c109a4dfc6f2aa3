"""The gan pipeline through the real engine and the CLI: a tiny run, a resumed longer one, `dlpipe generate`."""

from __future__ import annotations

import json

import pytest
import yaml

from dlpipe.errors import ConfigError
from dlpipe.pipelines.catalog import get_pipeline
from dlpipe.pipelines.config import resolve
from dlpipe.pipelines.engine import run_pipeline

SPEC = get_pipeline("gan")
TINY = {"load": {"path": "builtin:mnist-5k", "limit": 300}, "model": {"latent_dim": 16, "filters": 8},
        "train": {"epochs": 1, "batch_size": 32, "feature_epochs": 1, "fid_samples": 100, "progress": "none"},
        "export": {"samples": 16}}


def config(**train):
    layers = [("gan.yaml", yaml.safe_load(SPEC.default_config_text())),
              ("test", {**TINY, "train": {**TINY["train"], **train}})]
    return resolve("gan", SPEC.stage_configs(), layers, task="gan")


def test_a_tiny_gan_run_writes_samples_metrics_and_resumes_to_more_epochs(tmp_path):
    ctx = run_pipeline(SPEC, config(), tmp_path, echo=lambda _: None)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["fid_per_epoch"]) == 1 and metrics["fid_floor_real_vs_real"] > 0
    assert metrics["fid_per_epoch"][0] > metrics["fid_floor_real_vs_real"]
    for name in ("samples.png", "model.keras", "samples/epoch_001.png", "config.yaml", "report.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert ctx.report["data"]["dataset"] == "mnist-5k"
    # asked for two epochs in the same folder, the run continues after the first instead of starting over
    import keras

    class Epochs(keras.callbacks.Callback):
        ran: list[int] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.ran.append(epoch)

    ctx = run_pipeline(SPEC, config(epochs=2), tmp_path, resume=True, echo=lambda _: None, callbacks=[Epochs()])
    assert Epochs.ran == [1]
    assert len(ctx.history["g_loss"]) == 2 and len(ctx.metrics["fid_per_epoch"]) == 2
    assert (tmp_path / "samples" / "epoch_002.png").is_file()


def test_the_gan_pipeline_wants_a_builtin_dataset(tmp_path):
    bad = resolve("gan", SPEC.stage_configs(), [("gan.yaml", yaml.safe_load(SPEC.default_config_text())),
                                                 ("test", {**TINY, "load": {"path": str(tmp_path)}})])
    with pytest.raises(ConfigError, match="builtin:NAME"):
        run_pipeline(SPEC, bad, tmp_path / "out", echo=lambda _: None)


def test_generate_samples_a_trained_generator(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from dlpipe.pipelines.cli import main

    run_pipeline(SPEC, config(), tmp_path / "run", echo=lambda _: None)
    result = CliRunner().invoke(main, ["generate", str(tmp_path / "run"), "--n", "12", "--out", str(tmp_path / "g.png"),
                                       "--columns", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "g.png") as grid:  # 3 rows of 4 28-px tiles, 2 px apart, shown at twice the size
        assert grid.size == ((4 * 30 + 2) * 2, (3 * 30 + 2) * 2)
    missing = CliRunner().invoke(main, ["generate", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert missing.exit_code == 2 and "model.keras" in missing.output
