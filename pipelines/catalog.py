"""The pipelines dlpipe can run: one package per task, each registered here by one line.

A task's package (e.g. `pipelines/image_classify/`) holds its config
dataclasses, its stages and its recipe, and defines `PIPELINE`, a
`PipelineSpec` naming its task and its stages in run order. Every default lives
in those dataclasses: the default config (`dlpipe config PIPELINE`) is generated
from them. Importing this module does not import TensorFlow, so listing
pipelines and printing help stay instant.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from dlpipe.errors import ConfigError
from dlpipe.pipelines.config import DEFAULT_SEED
from dlpipe.pipelines.stage import Stage
from dlpipe.registry import Registry

# One line per task: the package that defines its PIPELINE.
PIPELINE_PACKAGES = (
    "dlpipe.pipelines.image_classify",
    "dlpipe.pipelines.sentiment",
    "dlpipe.pipelines.segment",
    "dlpipe.pipelines.gan",
    "dlpipe.pipelines.image_multilabel",
    "dlpipe.pipelines.detect",
    "dlpipe.pipelines.points",
    "dlpipe.pipelines.distill",
)


@dataclass(frozen=True)
class PipelineSpec:
    """A named pipeline: its task, its stages in run order (role -> stage class) and its search space."""

    name: str
    description: str
    task: str
    stages: tuple[tuple[str, type[Stage]], ...]
    # `dlpipe tune`'s built-in space: {dotted key: ("categorical", [choices]) | ("int", low, high)
    # | ("float", low, high, log)}; empty: the user gives one with --space
    search_space: dict[str, tuple] = field(default_factory=dict)
    # how `train.cv_folds` pools the folds (a pipelines.training.crossval.CrossValidationReport); None: a
    # classifier's accuracy
    cv_report: Any = None
    # measured defaults that the chosen model or data pick (pipelines.recipes.Recipe), applied in this order
    # below the user's own layers
    recipes: tuple = ()

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self.stages)

    def stage_class(self, role: str) -> type[Stage]:
        for name, cls in self.stages:
            if name == role:
                return cls
        raise ConfigError("stages", f"pipeline '{self.name}' has no '{role}' stage; its stages: {', '.join(self.roles)}")

    def stage_configs(self) -> dict[str, type]:
        return {role: cls.config_cls for role, cls in self.stages}

    def default_config(self) -> dict[str, Any]:
        """The default config as a mapping, every value from the stage dataclasses' defaults."""
        out: dict[str, Any] = {"pipeline": self.name, "task": self.task, "seed": DEFAULT_SEED, "stages": list(self.roles)}
        for role, config_cls in self.stage_configs().items():
            out[role] = dataclasses.asdict(config_cls())
        return out

    def default_config_text(self) -> str:
        """The default config as YAML (what `dlpipe config` starts from), generated from the dataclasses."""
        return f"# {self.name}: {self.description}\n" + yaml.safe_dump(self.default_config(), sort_keys=False)


@lru_cache(maxsize=1)
def pipelines() -> Registry[PipelineSpec]:
    """Every registered pipeline, by name."""
    registry: Registry[PipelineSpec] = Registry("pipeline")
    for package in PIPELINE_PACKAGES:
        spec = importlib.import_module(package).PIPELINE
        registry.add(spec.name, spec)
    return registry


def get_pipeline(name: str) -> PipelineSpec:
    return pipelines().get(name, key="pipeline")
