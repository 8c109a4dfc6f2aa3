"""Hostile configs: an alias bomb, an oversized --config and a huge --set value each get one short line, at once."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from dlpipe.errors import MAX_MESSAGE_CHARS, ConfigError
from dlpipe.pipelines.api import resolve_config
from dlpipe.pipelines.cli import main
from dlpipe.pipelines.yaml_limits import MAX_CONFIG_BYTES, load_bounded

LEVELS = "abcdefghi"


def billion_laughs() -> str:
    """Nine levels of ten aliases under a typed key: 10^9 strings once expanded, 370 bytes on disk."""
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"&{name} [" + ",".join([f"*{prev}"] * 10) + "]" for prev, name in zip(LEVELS, LEVELS[1:])]
    return "train:\n  epochs: [" + ", ".join(levels) + "]\n"


def run_cli(tmp_path, *args: str):
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["run", "image-classify", "--out", str(tmp_path / "out"), *args])
    return result, time.perf_counter() - started


def test_alias_bomb_in_a_typed_key_is_refused_at_once_in_one_short_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    result, seconds = run_cli(tmp_path, "--config", str(bomb))
    assert result.exit_code == 2 and seconds < 5
    assert "aliases expand it past" in result.output and str(bomb) in result.output
    assert len(result.output) < 300 and result.output.count("\n") == 1


def test_alias_bomb_in_a_set_value_and_a_recursive_anchor_are_refused():
    with pytest.raises(ConfigError, match="aliases expand it past"):
        resolve_config("image-classify", sets=["train.epochs=" + billion_laughs().split("epochs: ", 1)[1]])
    with pytest.raises(ConfigError, match="recursive anchor"):
        load_bounded("a: &x [1, *x]\n", "test.yaml")


def test_modest_aliases_still_load(tmp_path):
    config = tmp_path / "aliases.yaml"
    config.write_text("train:\n  epochs: &n 3\n  finetune_epochs: *n\n")
    resolved = resolve_config("image-classify", config)
    assert resolved["train"].epochs == 3 and resolved["train"].finetune_epochs == 3
    assert load_bounded("[&a [1, 2], *a, *a]", "x", max_expanded=20) == [[1, 2]] * 3
    with pytest.raises(ConfigError, match="past 10 nodes"):
        load_bounded("[&a [1, 2], *a, *a]", "x", max_expanded=10)


def test_oversized_config_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("train:\n  epochs: " + "9" * MAX_CONFIG_BYTES + "\n")
    result, seconds = run_cli(tmp_path, "--config", str(big))
    assert result.exit_code == 2 and seconds < 5
    assert f"over the {MAX_CONFIG_BYTES:,}-byte limit" in result.output and result.output.count("\n") == 1


def test_a_130_kb_set_value_is_cut_in_the_error(tmp_path):
    value = "x" * 130_000
    for item in (f"train.epochs={value}", value):  # a wrong type; no '=' at all
        result, seconds = run_cli(tmp_path, "--set", item)
        assert result.exit_code == 2 and seconds < 5
        assert result.output.startswith("error: --set: ") and result.output.count("\n") == 1
        assert len(result.output) < MAX_MESSAGE_CHARS + 100
