"""Typed, strict pipeline configs: embedded defaults < recipes < --config file < --data < --set.

Each stage declares a frozen dataclass; its field defaults and `help` metadata
are the one home of every option. A config is YAML with one mapping per stage
(named as in the pipeline's `stages` list) plus a top-level `seed`. Unknown
keys and wrong types fail with a ConfigError that names the source, the dotted
key, what was expected and what was received.
"""

from __future__ import annotations

import dataclasses
import re
import difflib
import types
import typing
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from dlpipe.errors import ConfigError, brief
from dlpipe.pipelines.yaml_limits import load_bounded, read_config_text

TOP_LEVEL_KEYS = ("pipeline", "description", "task", "seed", "stages")
DEFAULT_SEED = 42  # a run's seed unless its config says otherwise


class InvalidValue(ValueError):
    """Raised by a stage config's `__post_init__`; `key` is the field at fault."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


def require(condition: bool, key: str, message: str) -> None:
    """Config check: raise InvalidValue(key, message) unless `condition` holds."""
    if not condition:
        raise InvalidValue(key, message)


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A config field with its help text (shown by `dlpipe config PIPELINE`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: deepcopy(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class ResolvedConfig:
    """A pipeline's complete config: every stage section with every value filled in."""

    pipeline: str
    seed: int
    stages: tuple[str, ...]
    sections: dict[str, Any]
    task: str | None = None
    origins: dict[str, str] = field(default_factory=dict, compare=False)  # dotted key -> the layer that set it

    def source_of(self, dotted: str) -> str:
        """Which layer set `dotted` (a recipe, a config file, --data, --set), or 'default'."""
        return self.origins.get(dotted, "default")

    def __getitem__(self, section: str) -> Any:
        return self.sections[section]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pipeline": self.pipeline}
        if self.task:
            out["task"] = self.task
        out.update(seed=self.seed, stages=list(self.stages))
        for name, section in self.sections.items():
            out[name] = dataclasses.asdict(section)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, oversized or aliased-bomb file or bad YAML is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--config", f"file '{path}' does not exist")
    try:
        data = load_bounded(read_config_text(path), str(path))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError("(file)", f"not valid YAML: {first_line}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("(file)", f"must be a mapping of stage sections, got {type(data).__name__}", source=str(path))
    return data


def parse_sets(items: typing.Iterable[str]) -> dict[str, Any]:
    """['train.epochs=3', 'model.weights=none'] -> nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(item, "expected KEY=VALUE, e.g. --set train.epochs=5", source="--set")
        try:
            value = load_bounded(raw, "--set", key) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(key, "conflicts with another --set of its parent key", source="--set")
        node[parts[-1]] = value
    return out


def resolve(
    pipeline: str,
    stage_configs: dict[str, type],
    layers: list[tuple[str, dict[str, Any]]],
    task: str | None = None,
) -> ResolvedConfig:
    """Merge config layers (lowest first) and check them against the stage dataclasses.

    `layers` is [(source name, mapping), ...], e.g. the embedded default, the
    user's --config file and --set; an error names the layer a bad value came from.
    """
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for source, layer in layers:
        _check_keys(layer, stage_configs, source)
        _merge(merged, layer, origins, source, prefix="")
    if merged.get("pipeline", pipeline) != pipeline:
        raise ConfigError("pipeline", f"this config is for '{merged['pipeline']}', not '{pipeline}'", origins.get("pipeline"))
    if task is not None and merged.get("task", task) != task:
        raise ConfigError("task", f"pipeline '{pipeline}' is for task '{task}'; a config cannot change it", origins.get("task"))
    seed = merged.get("seed", DEFAULT_SEED)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("seed", f"expected an integer. Received: {brief(seed)}", origins.get("seed"))
    stages = merged.get("stages", list(stage_configs))
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise ConfigError("stages", f"expected a list of stage names. Received: {brief(stages)}", origins.get("stages"))
    for stage in stages:
        if stage not in stage_configs:
            raise ConfigError("stages", _unknown(stage, stage_configs, "stage"), origins.get("stages"))
    sections = {
        name: build_section(cls, merged.get(name) or {}, name, origins) for name, cls in stage_configs.items()
    }
    return ResolvedConfig(pipeline=pipeline, seed=seed, stages=tuple(stages), sections=sections, task=task,
                          origins=origins)


def build_section(cls: type, values: dict[str, Any], section: str, origins: dict[str, str] | None = None) -> Any:
    """Instantiate one stage's dataclass from a mapping, checking every value's type."""
    origins = origins or {}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{section}.{key}"
        try:
            kwargs[key] = check_type(value, hints[key])
        except TypeError as error:
            raise ConfigError(dotted, f"expected {error}. Received: {brief(value)}", origins.get(dotted)) from None
    try:
        return cls(**kwargs)
    except ValueError as error:
        key = getattr(error, "key", None)
        dotted = f"{section}.{key}" if key else section
        raise ConfigError(dotted, str(error), origins.get(dotted)) from None


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check_type(value: Any, hint: Any) -> Any:
    """Return `value` (ints widened to float where a float is asked) or raise TypeError(description)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value in args:
            return value
        raise TypeError("one of " + ", ".join(repr(a) for a in args))
    if origin in (Union, types.UnionType):
        descriptions = []
        for arg in args:
            try:
                return check_type(value, arg)
            except TypeError as error:
                descriptions.append(str(error))
        raise TypeError(" or ".join(descriptions))
    if hint is type(None):
        if value is None:
            return None
        raise TypeError("null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 (PyYAML) reads 1e-4 as a string: it wants 1.0e-4
        raise TypeError("a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError("a string")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"a list of {_describe(args[0]) if args else 'values'}")
        return [check_type(item, args[0]) for item in value] if args else list(value)
    raise TypeError(f"a value of type {hint}")


def _describe(hint: Any) -> str:
    try:
        check_type(object(), hint)
    except TypeError as error:
        return str(error)
    return str(hint)


def _check_keys(layer: dict[str, Any], stage_configs: dict[str, type], source: str) -> None:
    for key, value in layer.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if key not in stage_configs:
            known = list(stage_configs) + list(TOP_LEVEL_KEYS)
            raise ConfigError(key, _unknown(key, known, "section"), source)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping of options. Received: {brief(value)}", source)
        fields = [f.name for f in dataclasses.fields(stage_configs[key])]
        for sub in value:
            if sub not in fields:
                raise ConfigError(f"{key}.{sub}", _unknown(sub, fields, "key"), source)


def _unknown(name: str, known: typing.Iterable[str], what: str) -> str:
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {what}{hint}; known: {', '.join(known)}"


def _merge(base: dict[str, Any], layer: dict[str, Any], origins: dict[str, str], source: str, prefix: str) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origins, source, prefix=f"{dotted}.")
        else:
            base[key] = deepcopy(value)
            if isinstance(value, dict):
                for sub in value:
                    origins[f"{dotted}.{sub}"] = source
            origins[dotted] = source
