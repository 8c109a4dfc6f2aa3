"""Cross-validation and `dlpipe tune` on text: the shared training core serves every classification task."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import TINY_TEXT_SETS, write_sentences

FAST_TEXT = [*TINY_TEXT_SETS, "export.formats=[]", "train.epochs=3", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    return write_sentences(tmp_path_factory.mktemp("text") / "sentences.txt", 60, seed=5)


@pytest.mark.long  # three text runs (~22 s); the shared cross-validation core is in the suite through images and detection
def test_cv_folds_cross_validates_a_sentiment_run(sentences, tmp_path):
    from dlpipe.pipelines import api

    out = tmp_path / "cv"
    result = api.run("sentiment", data=str(sentences), out=out, sets=[*FAST_TEXT, "train.cv_folds=3"],
                     echo=lambda _: None)
    cv = result.metrics["cross_validation"]
    assert cv["folds"] == 3 and cv["pooled"]["count"] == 60  # every sentence validated exactly once
    assert cv["pooled"]["accuracy"] > 0.6  # separable by its sentiment words; chance is 0.5
    counts = [json.loads((out / "folds" / str(k) / "metrics.json").read_text())["count"] for k in range(3)]
    assert sorted(counts) == [20, 20, 20]


def test_tune_searches_a_sentiment_recipe_and_its_best_config_runs(sentences, tmp_path):
    from dlpipe.pipelines import api
    from dlpipe.pipelines.cli import main

    out = tmp_path / "tune"
    result = CliRunner().invoke(main, ["tune", "sentiment", "--data", str(sentences), "--out", str(out),
                                       "--budget-minutes", "10", "--folds", "2", "--max-trials", "1",
                                       "--space", "train.learning_rate=0.003..0.03",
                                       *[arg for s in FAST_TEXT for arg in ("--set", s)]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "trial 0: 2-fold CV accuracy" in result.output
    config = api.resolve_config("sentiment", out / "best.yaml")
    assert 0.003 <= config["train"].learning_rate <= 0.03 and config["train"].cv_folds == 0


def test_sentiment_has_a_built_in_search_space():
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.api import resolve_config

    space = get_pipeline("sentiment").search_space
    assert "model.architecture" in space
    for key in space:  # every key of the space is an option of the pipeline
        section, name = key.split(".")
        assert hasattr(resolve_config("sentiment")[section], name), key
