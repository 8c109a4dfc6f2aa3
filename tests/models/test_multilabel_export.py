"""Multi-label exports decide as the Keras model does: thresholds folded into the graph, 0.5 everywhere.

A tiny untrained model (no training: seconds) scores three labels from a photo's mean colour; its per-label
thresholds (0.3, 0.5, 0.7) are folded in with `fold_thresholds`. Keras, SavedModel (pixels and raw bytes) and
TFLite (float32 and int8) must name the same label sets, the .tflite's metadata must carry the labels and the
0.5 score threshold MediaPipe applies, and `describe` must answer the set of labels at or above it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

NAMES = ["blue", "green", "red"]
THRESHOLDS = [0.3, 0.5, 0.7]


def colour_model():
    """Mean colour -> one sigmoid per label, fixed weights: red scores high on red photos, and so on."""
    import keras

    inputs = keras.Input((16, 16, 3))
    mean = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    head = keras.layers.Dense(3, activation="sigmoid")
    model = keras.Model(inputs, head(mean))
    weights = np.array([[0, 0, 8], [0, 8, 0], [8, 0, 0]], np.float32)  # rows: r, g, b; columns: NAMES
    head.set_weights([weights, np.full(3, -4, np.float32)])  # each label's score: sigmoid(8 * (channel - 0.5))
    return model


def write_photos(folder: Path, count: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        colour = rng.integers(0, 256, 3)
        pixels = np.clip(colour + rng.normal(0, 8, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{index}.png")
        paths.append(str(folder / f"p{index}.png"))
    return paths


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras

    from dlpipe.data.datasets import batched, decoded_images
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.tasks.multilabel.layers import fold_thresholds

    keras.utils.set_random_seed(0)
    raw = colour_model()
    model = fold_thresholds(raw, THRESHOLDS)
    paths = write_photos(tmp_path_factory.mktemp("photos"))
    prep = ImagePreprocessing(image_size=16, resize="stretch")
    pixels = next(iter(batched(decoded_images(paths, None, prep), len(paths)))).numpy()
    request = ExportRequest(artifacts.Bundle("multilabel", NAMES, prep), calibration=paths, sample=pixels)
    out = tmp_path_factory.mktemp("exports")
    files = {fmt: export(model, fmt, out, request) for fmt in ("keras", "savedmodel", "tflite", "tflite-int8")}
    return files, paths, pixels, raw.predict(pixels, verbose=0)


def test_the_folded_model_decides_at_one_half_as_the_raw_one_at_its_thresholds(exported):
    from dlpipe.models.runtimes import load_runtime

    files, _, pixels, raw = exported
    on = raw >= np.asarray(THRESHOLDS)
    assert 0.2 < on.mean() < 0.8 and len({tuple(row) for row in on}) >= 4  # the photos give varied label sets
    scores = load_runtime(files["keras"]).predict(pixels)  # the .keras file loads its ThresholdShift
    np.testing.assert_array_equal(scores >= 0.5, on)


def test_savedmodel_and_tflite_agree_with_keras_on_scores_and_label_sets(exported):
    from dlpipe.models import artifacts
    from dlpipe.models.runtimes import load_runtime

    files, _, pixels, _ = exported
    expected = load_runtime(files["keras"]).predict(pixels)
    for fmt in ("savedmodel", "tflite"):
        scores = load_runtime(files[fmt]).predict(pixels)
        np.testing.assert_allclose(scores, expected, atol=1e-4, err_msg=fmt)
        parity = artifacts.read_record(files[fmt])["parity"]
        assert parity["count"] == len(pixels) and parity["decision_agreement"] == 1.0, (fmt, parity)
    int8 = load_runtime(files["tflite-int8"]).predict(pixels)
    assert ((int8 >= 0.5) == (expected >= 0.5)).mean() >= 0.9  # uint8 scores move by ~1/255 near a threshold


def test_savedmodel_raw_bytes_answer_the_names_that_are_on(exported):
    import tensorflow as tf

    from dlpipe.models.runtimes import load_runtime

    files, paths, pixels, _ = exported
    runtime = load_runtime(files["savedmodel"])
    signature = runtime.loaded.signatures["serving_default"]
    answer = signature(image_bytes=tf.constant([Path(p).read_bytes() for p in paths[:8]]))
    assert "label" not in answer  # no argmax label: a photo may show several
    expected = runtime.predict(pixels[:8]) >= 0.5
    np.testing.assert_array_equal(answer["on"].numpy(), expected)
    named = [{name.decode() for name in row if name} for row in answer["labels"].numpy()]
    assert named == [{NAMES[j] for j in np.flatnonzero(row)} for row in expected]


def test_tflite_metadata_carries_the_labels_and_the_one_half_threshold(exported):
    from dlpipe.models import tflite_metadata

    files = exported[0]
    assert tflite_metadata.read_labels(files["tflite"]) == NAMES
    output = tflite_metadata.read_metadata(files["tflite"])["subgraphMetadata"][0]["outputTensorMetadata"][0]
    thresholds = [unit["options"]["globalScoreThreshold"] for unit in output["processUnits"]
                  if "globalScoreThreshold" in unit.get("options", {})]
    assert thresholds == [0.5]


def test_describe_answers_every_label_at_or_above_the_threshold(exported):
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import get_task

    files, _, pixels, raw = exported
    task = get_task("multilabel")
    scores = load_runtime(files["tflite"]).predict(pixels)
    for row, raw_row in zip(scores, raw):
        answer = task.describe(row, NAMES, top_k=3)
        assert set(answer["labels"]) == {NAMES[j] for j in range(3) if raw_row[j] >= THRESHOLDS[j]}
        assert set(answer["scores"]) == set(NAMES)
    assert task.parity(np.zeros((0, 3)), np.zeros((0, 3)))["decision_agreement"] is None  # nothing compared
