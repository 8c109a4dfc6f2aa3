"""A name -> object registry shared by backbones, stages and pipelines.

A failed lookup lists the registered names and the closest match, so a typo in
a config gets a useful message instead of a bare KeyError.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from dlpipe.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Holds named entries of one family (e.g. "backbone")."""

    def __init__(self, family: str):
        self.family = family
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` above a class or function."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.family} '{name}' is registered twice")
        self._entries[name] = obj

    def get(self, name: str, key: str | None = None) -> T:
        """Return the entry; unknown names raise ConfigError naming `key`."""
        if name in self._entries:
            return self._entries[name]
        raise ConfigError(key or self.family, self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {self.family} '{name}'{hint}; choose one of: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
