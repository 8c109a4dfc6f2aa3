"""Recipes: the model and the data pick measured defaults, an explicit value always wins, and the source of every
value is named."""

from __future__ import annotations


import pytest
from click.testing import CliRunner

from dlpipe.pipelines.api import resolve_config
from dlpipe.pipelines.cli import main


def test_an_mlp_on_fashion_mnist_gets_the_measured_recipe_without_any_other_flag():
    config = resolve_config("image-classify", sets=["model.backbone=mlp"], data="builtin:fashion-mnist")
    model, train, augment = config["model"], config["train"], config["augment"]
    assert (model.weights, model.image_size, augment.enabled) == ("none", 28, False)
    assert (train.epochs, train.batch_size, train.learning_rate, train.lr_schedule) == (30, 128, 2e-3, "cosine")
    assert config.source_of("model.weights") == "recipe from-scratch"
    assert config.source_of("train.epochs") == "recipe mlp"
    assert config.source_of("model.backbone") == "--set"
    assert config.source_of("model.dropout") == "default"


def test_the_default_photo_run_takes_no_recipe():
    config = resolve_config("image-classify", data="/photos")
    assert config["model"].weights == "imagenet" and config["augment"].enabled
    assert not [source for source in config.origins.values() if source.startswith("recipe")]


def test_an_explicit_value_beats_the_recipe_from_set_and_from_a_config_file(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("train:\n  batch_size: 32\n", encoding="utf-8")
    config = resolve_config("image-classify", user, ["model.backbone=small_cnn", "train.epochs=4"],
                            data="builtin:fashion-mnist")
    assert (config["train"].epochs, config["train"].batch_size) == (4, 32)
    assert config["model"].width == 0.5 and config.source_of("model.width") == "recipe small_cnn"
    assert config.source_of("train.batch_size") == str(user)


def test_digits_get_the_light_augmentation_that_helped_them_and_garments_none():
    digits = resolve_config("image-classify", sets=["model.backbone=small_cnn"], data="builtin:mnist-5k")
    garments = resolve_config("image-classify", sets=["model.backbone=small_cnn"], data="builtin:fashion-mnist")
    assert digits["augment"].enabled and digits["augment"].flip == "none" and digits["train"].epochs == 20
    assert not garments["augment"].enabled and garments["train"].epochs == 10


def test_mpnet_fine_tunes_three_epochs_at_batch_16_unless_told_otherwise():
    config = resolve_config("sentiment", sets=["model.architecture=mpnet"])
    assert (config["train"].epochs, config["train"].batch_size) == (3, 16)
    assert resolve_config("sentiment", sets=["model.architecture=mpnet", "train.epochs=1"])["train"].epochs == 1
    assert resolve_config("sentiment")["train"].epochs == 20  # the GRU default keeps its own


def test_a_users_own_mistake_is_named_as_theirs_before_any_recipe_is_looked_at():
    with pytest.raises(Exception, match="did you mean 'backbone'"):
        resolve_config("image-classify", sets=["model.backbon=mlp"], data="builtin:fashion-mnist")


def test_dlpipe_config_shows_where_each_value_came_from():
    result = CliRunner().invoke(main, ["config", "image-classify", "--data", "builtin:fashion-mnist",
                                       "--set", "model.backbone=mlp", "--set", "train.epochs=12"])
    assert result.exit_code == 0, result.output
    train = result.output.split("\ntrain:")[1].split("\n\n")[0]  # the train section's lines
    assert "  batch_size: 128  # [recipe mlp]" in train and "  epochs: 12  # [--set]" in train
    assert "  path: builtin:fashion-mnist  # [--data]" in result.output
    assert "  dropout: 0.2  # [default]" in result.output
    assert "# recipe mlp: Fashion-MNIST" in result.output


def test_the_builtin_sets_native_sizes_are_their_arrays_sizes():
    from dlpipe.data.builtin_datasets import NATIVE_SIZES, load_builtin

    data = load_builtin("digits", limit=10)
    assert data.train_images.shape[1:3] == (NATIVE_SIZES["digits"],) * 2
