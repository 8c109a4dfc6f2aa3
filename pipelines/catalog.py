"""The pipelines dlpipe can run: one YAML file each under `defaults/`, which is also the default config.

A pipeline file names its task, describes itself and lists its stage roles
in run order; each role's stage class comes from the stage registry. Adding
a pipeline is adding a YAML file. Importing this module does not import
TensorFlow, so listing pipelines and printing help stay instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from dlpipe import pipelines as _package
from dlpipe.errors import ConfigError
from dlpipe.pipelines import stages as _stages  # noqa: F401  (importing the package registers every stage)
from dlpipe.pipelines.stage import Stage, stage_class
from dlpipe.registry import Registry


@dataclass(frozen=True)
class PipelineSpec:
    """A named pipeline: its task, its stages in order and its default config (the YAML it is read from)."""

    name: str
    description: str
    task: str
    roles: tuple[str, ...]
    default_config: str  # file name under defaults/

    def stage_class(self, role: str) -> type[Stage]:
        return stage_class(self.task, role)

    def stage_configs(self) -> dict[str, type]:
        return {role: self.stage_class(role).config_cls for role in self.roles}

    def default_config_text(self) -> str:
        return resources.files(_package).joinpath("defaults", self.default_config).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def pipelines() -> Registry[PipelineSpec]:
    """Every pipeline under defaults/, by name."""
    registry: Registry[PipelineSpec] = Registry("pipeline")
    folder = resources.files(_package).joinpath("defaults")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            spec = _spec(entry.name, yaml.safe_load(entry.read_text(encoding="utf-8")) or {})
            registry.add(spec.name, spec)
    return registry


def get_pipeline(name: str) -> PipelineSpec:
    return pipelines().get(name, key="pipeline")


def _spec(file_name: str, data: dict[str, Any]) -> PipelineSpec:
    missing = [key for key in ("pipeline", "description", "task", "stages") if key not in data]
    if missing:
        raise ConfigError(", ".join(missing), "missing in the pipeline definition", source=file_name)
    return PipelineSpec(name=data["pipeline"], description=data["description"], task=data["task"],
                        roles=tuple(data["stages"]), default_config=file_name)
