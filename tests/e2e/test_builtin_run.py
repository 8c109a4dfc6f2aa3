"""`--data builtin:NAME` goes through the image-classify load stage, and `dlpipe evaluate` scores its test split."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dlpipe.pipelines.cli import main


def test_an_mlp_learns_the_builtin_digits_and_evaluates_on_their_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv("DLPIPE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    sets = ["model.backbone=mlp", "model.weights=none", "model.image_size=16", "load.max_per_class=80",
            "train.epochs=15", "train.batch_size=32", "train.progress=none", "train.tensorboard=false",
            "train.early_stopping_patience=0", "augment.enabled=false", "export.formats=[keras]"]
    result = CliRunner().invoke(main, ["run", "image-classify", "--data", "builtin:digits", "--out", str(out),
                                       *[f"--set={s}" for s in sets]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["train_images"] == 800 and report["data"]["val_images"] == 359  # the fixed held-out split
    assert (out / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    evaluated = CliRunner().invoke(main, ["evaluate", str(out), "--data", "builtin:digits", "--out",
                                          str(tmp_path / "m.json")], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["count"] == 359 and metrics["accuracy"] > 0.6  # ten classes: chance is 0.1
