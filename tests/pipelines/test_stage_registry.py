"""The stage registry and the pipeline catalog: stages are found by task and role, pipelines by their YAML."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dlpipe.errors import ConfigError
from dlpipe.pipelines.catalog import get_pipeline, pipelines
from dlpipe.pipelines.stage import STAGES, RunContext, Stage, register_stage, stage_class


def test_every_pipeline_is_read_from_its_yaml_and_every_role_has_a_stage():
    assert set(pipelines().names()) >= {"image-classify", "sentiment"}
    for name in pipelines().names():
        spec = get_pipeline(name)
        assert spec.default_config == f"{name}.yaml" and spec.task and spec.description
        for role in spec.roles:
            stage = spec.stage_class(role)
            assert stage.name == role and stage.__doc__ and stage.config_cls.__doc__
        assert list(spec.stage_configs()) == list(spec.roles)


def test_task_stages_win_over_shared_ones_and_shared_ones_serve_every_task():
    image_load, text_load = stage_class("image", "load"), stage_class("text", "load")
    assert image_load is not text_load
    assert stage_class("image", "train") is stage_class("text", "train") is STAGES.get("train")
    with pytest.raises(ConfigError, match="no 'detect' stage for task 'image'"):
        stage_class("image", "detect")


def test_registering_checks_the_config_class_and_duplicates():
    @dataclass(frozen=True)
    class EchoConfig:
        """Nothing."""

    @register_stage("test-task", "echo")
    class EchoStage(Stage):
        """Says hello."""

        config_cls = EchoConfig

        def run(self, ctx: RunContext) -> str:
            return "hello"

    assert stage_class("test-task", "echo") is EchoStage and EchoStage.name == "echo"
    with pytest.raises(ValueError, match="registered twice"):
        register_stage("test-task", "echo")(EchoStage)
    with pytest.raises(TypeError, match="config_cls"):
        register_stage("test-task", "broken")(type("Broken", (Stage,), {"run": lambda self, ctx: ""}))


def test_a_pipeline_with_an_unknown_stage_is_refused_by_name():
    from dlpipe.pipelines.api import resolve_config

    with pytest.raises(ConfigError, match="unknown stage"):
        resolve_config("image-classify", sets=["stages=[load, modle]"])
    with pytest.raises(ConfigError, match="task: pipeline 'image-classify' is for task 'image'"):
        resolve_config("image-classify", sets=["task=text"])
