"""One package per task: pipelines come from their packages, defaults from their dataclasses, options stay per task."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from click.testing import CliRunner

from dlpipe.errors import ConfigError
from dlpipe.pipelines.api import resolve_config
from dlpipe.pipelines.catalog import PIPELINE_PACKAGES, get_pipeline, pipelines
from dlpipe.pipelines.cli import main


def test_every_pipeline_comes_from_its_package_and_every_role_has_a_documented_stage():
    assert set(pipelines().names()) >= {"image-classify", "sentiment", "segment", "gan"}
    assert len(pipelines().names()) == len(PIPELINE_PACKAGES)
    for name in pipelines().names():
        spec = get_pipeline(name)
        assert spec.task and spec.description
        for role in spec.roles:
            stage = spec.stage_class(role)
            assert stage.__doc__ and stage.config_cls.__doc__, (name, role)
        assert list(spec.stage_configs()) == list(spec.roles)
    with pytest.raises(ConfigError, match="has no 'detect' stage"):
        get_pipeline("image-classify").stage_class("detect")


@pytest.mark.parametrize("name", sorted(pipelines().names()))
def test_yaml_defaults_equal_the_dataclass_defaults(name):
    """`dlpipe config NAME` (YAML with comments) and the generated default config hold the dataclasses' values."""
    spec = get_pipeline(name)
    printed = yaml.safe_load(CliRunner().invoke(main, ["config", name], catch_exceptions=False).output)
    generated = yaml.safe_load(spec.default_config_text())
    resolved = resolve_config(name)
    for role, config_cls in spec.stage_configs().items():
        defaults = dataclasses.asdict(config_cls())
        assert printed[role] == defaults == generated[role], (name, role)
        assert dataclasses.asdict(resolved[role]) == defaults, (name, role)
    assert printed["stages"] == list(spec.roles) and printed["task"] == spec.task


def test_the_shipped_defaults_are_the_measured_recipes():
    """The values BENCHMARKS.md measured (issue 14) are the ones a run gets without --set."""
    image, text = resolve_config("image-classify"), resolve_config("sentiment")
    assert image["model"].backbone == "efficientnet_lite2" and image["train"].head == "probe"
    assert image["train"].finetune_epochs == 0 and image["train"].refit == "auto"
    assert text["model"].architecture == "gru" and text["preprocess"].tokenizer == "wordpiece"
    assert (text["preprocess"].max_tokens, text["preprocess"].sequence_length, text["model"].embedding_dim) == (8000, 48, 128)


def _options(config_text: str) -> set[str]:
    data = yaml.safe_load(config_text)
    return {f"{section}.{key}" for section, values in data.items() if isinstance(values, dict) for key in values}


def test_a_task_shows_only_its_own_options():
    runner = CliRunner()
    text = _options(runner.invoke(main, ["config", "sentiment"], catch_exceptions=False).output)
    image = _options(runner.invoke(main, ["config", "image-classify"], catch_exceptions=False).output)
    segment = _options(runner.invoke(main, ["config", "segment"], catch_exceptions=False).output)
    image_only = {"train.probe_c", "train.probe_baseline", "train.head", "evaluate.tta", "model.backbone", "augment.flip"}
    text_only = {"model.architecture", "preprocess.tokenizer", "preprocess.sequence_length", "model.embeddings"}
    assert image_only <= image and not image_only & text and not image_only & segment
    assert text_only <= text and not text_only & image
    assert "train.cv_folds" in text and "train.cv_folds" in image and "train.cv_folds" not in segment
    with pytest.raises(ConfigError, match="train.probe_c: unknown key"):
        resolve_config("sentiment", sets=["train.probe_c=1.0"])


def test_a_pipeline_with_an_unknown_stage_or_another_task_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown stage"):
        resolve_config("image-classify", sets=["stages=[load, modle]"])
    with pytest.raises(ConfigError, match="task: pipeline 'image-classify' is for task 'image'"):
        resolve_config("image-classify", sets=["task=text"])
