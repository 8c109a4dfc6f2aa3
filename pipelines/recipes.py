"""Recipes: measured defaults that the model and the data pick, below anything the user sets.

A pipeline's dataclass defaults suit its main case (a pretrained backbone on photos, a small GRU on
sentences). Other models and data want other settings: an MLP on 28-pixel garments trains from scratch,
longer, without photo augmentation; MPNet fine-tunes for 3 epochs, not 20. Each such set is a `Recipe`
declared in the pipeline's package beside its dataclasses, with the BENCHMARKS.md section that measured it.

Layers, lowest first: dataclass defaults < every matching recipe (in declaration order) < --config file <
--data < --set. A recipe matches on what the user chose (`Choices`: their layers over the defaults), so an
explicit value always wins, and `dlpipe config PIPELINE --set ...` names the layer each value came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

Layers = list[tuple[str, dict[str, Any]]]


class Choices:
    """What a user's layers say for a dotted key, else the dataclass default (what a recipe matches on)."""

    def __init__(self, stage_configs: Mapping[str, type], layers: Layers):
        self._stage_configs = stage_configs
        self._layers = layers

    def __getitem__(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        for _, layer in reversed(self._layers):
            values = layer.get(section)
            if isinstance(values, dict) and key in values:
                return values[key]
        defaults = {f.name: f for f in dataclasses.fields(self._stage_configs[section])}
        default = defaults[key]
        if default.default is not dataclasses.MISSING:
            return default.default
        return default.default_factory()  # type: ignore[misc]

    def data(self) -> str:
        """The data source as given (`load.path`), '' when none."""
        return str(self["load.path"] or "")


@dataclass(frozen=True)
class Recipe:
    """A named set of values for the stages, applied when `applies(choices)` is true."""

    name: str
    applies: Callable[[Choices], bool]
    values: dict[str, dict[str, Any]] | Callable[[Choices], dict[str, dict[str, Any]]]  # a callable reads the choices
    why: str  # what was measured, and where (a BENCHMARKS.md section)

    def layer(self, choices: Choices) -> tuple[str, dict[str, Any]]:
        values = self.values(choices) if callable(self.values) else self.values
        return f"recipe {self.name}", {section: dict(keys) for section, keys in values.items()}


def recipe_layers(recipes: Iterable[Recipe], stage_configs: Mapping[str, type], layers: Layers) -> Layers:
    """The layers of every recipe matching the user's `layers`, in declaration order."""
    choices = Choices(stage_configs, layers)
    return [recipe.layer(choices) for recipe in recipes if recipe.applies(choices)]
