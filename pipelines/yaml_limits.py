"""YAML read with bounds: a config's size, its expansion through aliases, its nesting.

PyYAML shares an aliased node instead of copying it, so a 400-byte "billion laughs" file loads at once, but
anything that walks the value afterwards (a type check, a message quoting it) meets 10^9 items: measured
24 GB and an out-of-memory kill. Here the composed node graph is measured first, each shared node once,
and a document that would expand past the limit (or that refers to itself) is refused before it becomes a
Python value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dlpipe.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000  # a --config file larger than this is refused before it is read
MAX_EXPANDED_SIZE = 2_000_000  # nodes plus scalar characters, every alias counted as a full copy


class _Refused(Exception):
    """A document too large once expanded, or recursive."""


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """The size of `root` with every alias expanded, computed once per distinct node (memoised, so a bomb's
    10^9 leaves cost ten steps); raises _Refused past `limit` or on a node that contains itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused("an alias refers to a node that contains it (a recursive anchor)")
        open_nodes.add(key)
        if isinstance(node, yaml.ScalarNode):
            total = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        else:
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(key)
        if total > limit:
            raise _Refused(f"aliases expand it past {limit:,} nodes and characters")
        sizes[key] = total
        return total

    return size(root)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that measures each document's expanded size before constructing any Python value."""

    max_expanded = MAX_EXPANDED_SIZE

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, self.max_expanded)
        return node


def load_bounded(text: str, source: str, key: str = "(file)", max_expanded: int = MAX_EXPANDED_SIZE) -> Any:
    """`yaml.safe_load(text)`, refusing a document that aliases expand past `max_expanded` (ConfigError);
    bad YAML is still a yaml.YAMLError for the caller to word."""
    loader = _BoundedLoader(text)
    loader.max_expanded = max_expanded
    try:
        return loader.get_single_data()
    except _Refused as error:
        raise ConfigError(key, f"refused: {error}; write the values out instead of aliasing them", source) from None
    except RecursionError:
        raise ConfigError(key, "refused: nested too deeply", source) from None
    finally:
        loader.dispose()


def read_config_text(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A config file's text, refusing one over `max_bytes` before reading it (a config is a few KB)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ConfigError("(file)", f"is {size:,} bytes, over the {max_bytes:,}-byte limit for a config; "
                                    "a config holds settings, not data", source=str(path))
    return path.read_text(encoding="utf-8")
