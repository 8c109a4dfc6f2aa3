"""The config engine: layering, strict keys, types and values, with messages naming the key."""

from __future__ import annotations

import pytest
import yaml

from dlpipe.errors import ConfigError
from dlpipe.pipelines.api import resolve_config
from dlpipe.pipelines.config import parse_sets, resolve
from dlpipe.pipelines.catalog import get_pipeline


def test_embedded_default_resolves_with_every_stage():
    config = resolve_config("image-classify")
    assert config.stages == ("load", "model", "preprocess", "augment", "train", "evaluate", "export")
    assert config["model"].backbone == "efficientnet_lite2"
    assert config["load"].val_split == 0.2


def test_layers_apply_in_order_file_then_data_then_set(tmp_path):
    user = tmp_path / "my.yaml"
    user.write_text("train:\n  epochs: 2\n  learning_rate: 0.01\nmodel:\n  backbone: small_cnn\n")
    config = resolve_config("image-classify", user, ["train.epochs=7", "train.optimizer=sgd"], data="/x")
    assert config["train"].epochs == 7  # --set beats the file
    assert config["train"].learning_rate == 0.01  # the file beats the default
    assert config["train"].optimizer == "sgd"
    assert config["model"].backbone == "small_cnn"
    assert config["load"].path == "/x"


def test_exponent_numbers_are_numbers_from_set_and_from_files(tmp_path):
    """PyYAML reads 1e-4 (no dot) as a string; a float option still takes it."""
    user = tmp_path / "user.yaml"
    user.write_text("train:\n  finetune_lr_factor: 2E-1\n", encoding="utf-8")
    config = resolve_config("image-classify", user, ["train.learning_rate=1e-4"])
    assert config["train"].learning_rate == pytest.approx(1e-4)
    assert config["train"].finetune_lr_factor == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="train.learning_rate"):
        resolve_config("image-classify", sets=["train.learning_rate=1e-4x"])


def test_ints_widen_to_floats_and_values_parse_as_yaml():
    config = resolve_config("image-classify", sets=["train.learning_rate=1", "model.weights=none", "load.max_per_class=null"])
    assert config["train"].learning_rate == 1.0 and isinstance(config["train"].learning_rate, float)
    assert config["model"].weights == "none"
    assert config["load"].max_per_class is None


@pytest.mark.parametrize(
    "sets, key, fragment",
    [
        (["train.optimzer=adam"], "train.optimzer", "did you mean 'optimizer'"),
        (["trian.epochs=3"], "trian", "did you mean 'train'"),
        (["train.epochs=three"], "train.epochs", "expected an integer"),
        (["train.optimizer=lbfgs"], "train.optimizer", "one of 'adam', 'sgd', 'rmsprop', 'adamw'"),
        (["augment.enabled=maybe"], "augment.enabled", "true or false"),
        (["load.val_split=1.5"], "load.val_split", "must be in (0, 1)"),
        (["train.epochs=0"], "train.epochs", "at least 1"),
        (["preprocess.filter_size=4"], "preprocess.filter_size", "odd"),
        (["noequals"], "noequals", "KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(sets, key, fragment):
    with pytest.raises(ConfigError) as info:
        resolve_config("image-classify", sets=sets)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert info.value.source == "--set"


def test_errors_name_the_file_they_come_from(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone: small_cnn\n  dropuot: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model.dropuot: unknown key \(did you mean 'dropout'\?\)"):
        resolve_config("image-classify", bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config("image-classify", broken)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config("image-classify", tmp_path / "missing.yaml")


def test_unknown_stage_and_pipeline_are_rejected():
    with pytest.raises(ConfigError, match="unknown stage"):
        resolve_config("image-classify", sets=["stages=[load, tain]"])
    with pytest.raises(ConfigError, match="did you mean 'image-classify'"):
        resolve_config("image-clasify")


def test_resolved_config_round_trips_through_yaml():
    config = resolve_config("image-classify", sets=["train.epochs=3", "augment.flip=vertical"])
    spec = get_pipeline("image-classify")
    again = resolve(spec.name, spec.stage_configs(), [("saved", yaml.safe_load(config.to_yaml()))], task=spec.task)
    assert again == config


def test_parse_sets_nests_dotted_keys():
    assert parse_sets(["a.b=1", "a.c=[1, 2]", "d=x"]) == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
