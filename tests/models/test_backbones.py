"""The backbone table, weight resolution (cache, file, offline), the classifier and fine-tuning helpers."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from dlpipe.errors import ConfigError, WeightsUnavailableError
from dlpipe.data.builtin_datasets import keras_home
from dlpipe.models.backbones import BACKBONES, get_backbone
from dlpipe.models.classifier import build_classifier
from dlpipe.models.finetune import block_names, unfreeze_top_blocks
from dlpipe.models.layers import NORMALIZATION_MODES, ImagePreprocess

MOBILENET_CACHE_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_builds_a_pooled_feature_model(name):
    spec = get_backbone(name)
    model = spec.build((64, 64, 3), None)
    assert model.output_shape == (None, spec.feature_dim)
    assert spec.normalization in NORMALIZATION_MODES


def test_unknown_backbone_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="did you mean 'mobilenet_v2'"):
        get_backbone("mobilenet_v3")


@pytest.fixture
def keras_cache():
    """The Keras cache folder (a throw-away KERAS_HOME set in conftest), emptied afterwards."""
    cache = keras_home() / "models"
    cache.mkdir(parents=True, exist_ok=True)
    before = set(cache.iterdir())
    yield cache
    for path in set(cache.iterdir()) - before:
        path.unlink()


def test_imagenet_weights_load_from_the_keras_cache(keras_cache):
    """Offline, keras.applications finds its weights file in the cache; a file we made stands in for it."""
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg")
    reference.set_weights([w + 0.01 * i for i, w in enumerate(reference.get_weights())])
    # keras.applications caches legacy-format .h5 files; write one the same way
    with h5py.File(keras_cache / MOBILENET_CACHE_FILE, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    model = get_backbone("mobilenet_v2").build((96, 96, 3), "imagenet")
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_offline_and_uncached_weights_name_the_file_and_the_fix(keras_cache):
    with pytest.raises(WeightsUnavailableError) as info:
        get_backbone("mobilenet_v2").build((96, 96, 3), "imagenet")
    message = str(info.value)
    assert MOBILENET_CACHE_FILE in message and str(keras_cache) in message
    assert "model.weights=" in message


def test_explicit_weights_file_and_bad_choices(tmp_path):
    spec = get_backbone("small_cnn")
    trained = spec.build((32, 32, 3), None)
    path = tmp_path / "cnn.weights.h5"
    trained.save_weights(path)
    model = build_classifier(spec, 2, 32, str(path))
    np.testing.assert_array_equal(model.get_layer("backbone").get_weights()[0], trained.get_weights()[0])
    with pytest.raises(ConfigError, match="has no pretrained weights"):
        build_classifier(spec, 2, 32, "imagenet")
    with pytest.raises(ConfigError, match="does not exist"):
        build_classifier(spec, 2, 32, str(tmp_path / "missing.h5"))


def test_pretrained_backbone_starts_frozen_random_one_trains(tmp_path):
    spec = get_backbone("small_cnn")
    path = tmp_path / "w.weights.h5"
    spec.build((32, 32, 3), None).save_weights(path)
    frozen = build_classifier(spec, 3, 32, str(path))
    assert not frozen.get_layer("backbone").trainable
    assert frozen.output_shape == (None, 3)
    scratch = build_classifier(spec, 3, 32, None)
    assert scratch.get_layer("backbone").trainable


def test_unfreeze_top_blocks_keeps_stem_and_batchnorm_frozen():
    backbone = get_backbone("mobilenet_v2").build((64, 64, 3), None)
    names = block_names(backbone, get_backbone("mobilenet_v2").block_pattern)
    assert names[0] == "block_1" and names[-1] == "block_16"
    unfreeze_top_blocks(backbone, r"^(block_?\d+[a-z]?)_", 2)
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    assert any(n.startswith("block_16_") for n in trainable) and any(n.startswith("block_15_") for n in trainable)
    assert not any(n.startswith("block_14_") or n.startswith("Conv1") for n in trainable)
    assert "Conv_1" in trainable  # the head convolution after the last block trains too
    assert not any(isinstance(backbone.get_layer(n), keras.layers.BatchNormalization) for n in trainable)
    unfreeze_top_blocks(backbone, r"^(block_?\d+[a-z]?)_", -1)
    assert backbone.get_layer("Conv1").trainable


def test_image_preprocess_modes_and_serialisation():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    assert np.allclose(ImagePreprocess("unit")(pixels), [[[[0, 0.5, 1]]]])
    assert np.allclose(ImagePreprocess("tf")(pixels), [[[[-1, 0, 1]]]])
    assert np.allclose(ImagePreprocess("efficientnet_lite")(pixels), [[[[-127 / 128, 0.5 / 128, 1]]]])
    assert np.allclose(ImagePreprocess("caffe")(pixels), [[[[255 - 103.939, 127.5 - 116.779, 0 - 123.68]]]])
    standardized = ImagePreprocess("standardize")(np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)))
    assert np.allclose(np.mean(standardized, axis=(1, 2)), 0, atol=1e-4)
    layer = ImagePreprocess.from_config(ImagePreprocess("torch").get_config())
    assert layer.mode == "torch"
    with pytest.raises(ValueError, match="Received: mode='bgr'"):
        ImagePreprocess("bgr")


def test_scratch_options_shape_the_from_scratch_backbones_only():
    from dlpipe.models.backbones import ScratchOptions

    spec = get_backbone("small_cnn")
    full = build_classifier(spec, 10, 28, None)
    half = build_classifier(spec, 10, 28, None, scratch=ScratchOptions(width=0.5))
    assert 0.2 < half.count_params() / full.count_params() < 0.3  # a conv layer's weights scale with width squared
    plain = build_classifier(get_backbone("mlp"), 10, 28, None, scratch=ScratchOptions(batch_norm=False))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.get_layer("backbone").layers)
    with pytest.raises(ConfigError, match="model.width.*fixed architecture"):
        build_classifier(get_backbone("mobilenet_v2"), 2, 32, None, scratch=ScratchOptions(width=0.5))
