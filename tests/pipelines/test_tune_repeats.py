"""`dlpipe tune` never runs or counts the same settings twice (issue 27): TPE draws discrete settings again, and a
resumed study's sampler, seeded as in the first session, used to replay that session's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_SETS, write_color_images

pytestmark = pytest.mark.long  # a search: bench/long_checks.py, not the 10-minute suite

FAST = [*TINY_SETS, "export.formats=[]", "model.image_size=16"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    write_color_images(root / "blue", "blue", 8, seed=2, size=20)
    write_color_images(root / "red", "red", 8, seed=1, size=20)
    return root


def test_a_repeated_setting_is_skipped_and_not_counted(colours, tmp_path):
    import optuna

    from dlpipe.pipelines.training.tuning import STUDY_FILE, parse_space, tune

    out = tmp_path / "tune"
    space = parse_space(["train.epochs=1,2"])  # two settings in all
    first = tune("image-classify", str(colours), out, budget_minutes=10, folds=2, sets=FAST, space=space,
                 max_trials=1, echo=lambda _: None)
    assert first["trials"] == 1
    study = optuna.load_study(study_name="image-classify", storage=f"sqlite:///{out / STUDY_FILE}")
    study.enqueue_trial(study.trials[0].params)  # what TPE (or a replaying sampler) proposes again
    lines: list[str] = []
    result = tune("image-classify", str(colours), out, budget_minutes=10, folds=2, sets=FAST, space=space,
                  max_trials=5, echo=lines.append)
    assert [line for line in lines if "skipped" in line] == ["trial 1: the same settings as trial 0; skipped, not counted"]
    assert "every one of the 2 settings of the search space has been tried" in lines
    assert result["trials"] == 2
    trials = json.loads((out / "trials.json").read_text())
    assert sorted(trial["params"]["train.epochs"] for trial in trials) == [1, 2]
    assert len(list((out / "trials").iterdir())) == 2  # one cross-validation folder per setting
