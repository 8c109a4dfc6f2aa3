"""EfficientNet-Lite0 as users meet it: the named ImageNet model on sample photos, through dlpipe's own preprocessing.

The port itself (reader, layer mapping, logits against PyTorch) is tested in test_efficientnet_lite.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import HYMENOPTERA
from dlpipe.data.preprocess import load_image
from dlpipe.models import efficientnet_lite as lite
from assets import require_module


@pytest.fixture(scope="module")
def imagenet_model():
    from dlpipe.models.pretrained import NAMED_MODELS

    return NAMED_MODELS.get("efficientnet-lite0-imagenet")()


def top5(named, path: str) -> tuple[list[int], np.ndarray]:
    pixels = load_image(tf.constant(path), named.preprocessing).numpy()[None]
    probabilities = named.model.predict(pixels, verbose=0)[0]
    return list(np.argsort(-probabilities)[:5]), probabilities


def test_sample_photos_get_their_imagenet_classes(imagenet_model):
    """Reference (original weights in PyTorch): china.jpg -> palace p~0.38, flower.jpg -> daisy p~0.32."""
    sklearn_images = require_module("sklearn.datasets").__file__
    images = Path(sklearn_images).parent / "images"
    classes, probabilities = top5(imagenet_model, str(images / "china.jpg"))
    assert imagenet_model.class_names[classes[0]] == "palace" and 0.30 < probabilities[698] < 0.48
    classes, probabilities = top5(imagenet_model, str(images / "flower.jpg"))
    assert imagenet_model.class_names[classes[0]] == "daisy" and 0.25 < probabilities[985] < 0.42


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


def test_predict_command_prints_imagenet_labels(tmp_path):
    from click.testing import CliRunner

    from dlpipe.pipelines.cli import main

    photo = sorted((HYMENOPTERA / "bees").glob("*.jpg"))[1]
    result = CliRunner().invoke(main, ["predict", "--model", "efficientnet-lite0-imagenet", str(photo)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first_line = [line for line in result.output.splitlines() if not line.startswith("model: ")][0]
    assert first_line.startswith(f"{photo}: ") and "bee" in first_line
    assert len(first_line.split(", ")) == 5  # top-5 labels
