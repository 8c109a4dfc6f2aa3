"""The multi-label lse head (`model.pooling=lse`): per-location logits pooled by log-sum-exp, thresholds folded exactly.

Log-sum-exp pooling must lie between the average and the maximum of the locations' logits, and commute with a
constant shift; that is what lets `fold_thresholds` lower the 1x1 convolution's bias instead of adding a layer.
A tiny untrained classifier (no training: seconds) checks the folded decisions, the .keras round trip, the float
and full-integer .tflite and ONNX against Keras.
"""

from __future__ import annotations

import numpy as np
import pytest

THRESHOLDS = [0.3, 0.5, 0.7]


def test_lse_pooling_lies_between_mean_and_max_and_commutes_with_a_shift():
    from dlpipe.models.layers import LogSumExpPooling

    logits = np.random.default_rng(0).normal(size=(4, 5, 6, 3)).astype(np.float32) * 3
    mean, top = logits.mean(axis=(1, 2)), logits.max(axis=(1, 2))
    soft = np.asarray(LogSumExpPooling(1.0)(logits))
    sharp = np.asarray(LogSumExpPooling(100.0)(logits))
    assert np.all(soft > mean) and np.all(soft < top)
    assert np.all(sharp <= top + 1e-5) and np.all(sharp > top - 0.1)
    np.testing.assert_allclose(np.asarray(LogSumExpPooling(5.0)(logits - 2.0)),
                               np.asarray(LogSumExpPooling(5.0)(logits)) - 2.0, atol=1e-5)
    assert LogSumExpPooling.from_config(LogSumExpPooling(7.0).get_config()).sharpness == 7.0
    with pytest.raises(ValueError, match="sharpness must be above 0"):
        LogSumExpPooling(0.0)


@pytest.fixture(scope="module", params=["last", "finer"])
def lse_model(request, tmp_path_factory):
    """An untrained small_cnn lse classifier (on its last map, or the finer one), 48 noise photos (files, for
    calibration) and their model pixels."""
    import keras
    from PIL import Image

    from dlpipe.data.datasets import batched, decoded_images
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier(get_backbone("small_cnn"), 3, 32, None, activation="sigmoid", pooling="lse",
                             finer_map=request.param == "finer")
    folder, rng = tmp_path_factory.mktemp("noise"), np.random.default_rng(1)
    paths = []
    for index in range(48):
        paths.append(str(folder / f"p{index}.png"))
        noise = rng.normal(rng.integers(40, 216, 3), 30, (32, 32, 3))  # each photo its own mean colour
        Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(paths[-1])
    prep = ImagePreprocessing(image_size=32, resize="stretch")
    pixels = next(iter(batched(decoded_images(paths, None, prep), len(paths)))).numpy()
    conv = model.get_layer("location_logits")  # spread, then centre the untrained logits: thresholds split them
    pooled = keras.Model(model.inputs, model.get_layer("lse_pool").output)
    kernel, bias = conv.get_weights()
    scale = 2 / np.maximum(pooled.predict(pixels, verbose=0).std(axis=0), 1e-6)
    conv.set_weights([kernel * scale, bias * scale])
    conv.set_weights([kernel * scale, bias * scale - np.median(pooled.predict(pixels, verbose=0), axis=0)])
    return model, pixels, paths, prep


def test_thresholds_fold_into_the_location_logits_exactly(lse_model, tmp_path):
    import keras

    from dlpipe.models.tasks.multilabel.layers import ThresholdShift, fold_thresholds, shifted_scores

    model, pixels, _, _ = lse_model
    raw = model.predict(pixels, verbose=0)
    assert 0.1 < np.mean(raw >= np.asarray(THRESHOLDS)) < 0.9
    folded_model = fold_thresholds(model, THRESHOLDS)
    folded = folded_model.predict(pixels, verbose=0)
    assert not any(isinstance(layer, ThresholdShift) for layer in folded_model.layers)
    np.testing.assert_array_equal(folded >= 0.5, raw >= np.asarray(THRESHOLDS))
    np.testing.assert_allclose(folded, shifted_scores(raw, THRESHOLDS), atol=1e-5)
    np.testing.assert_allclose(model.predict(pixels, verbose=0), raw)  # the model given is left as it was
    folded_model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras").predict(pixels, verbose=0), folded,
                               atol=1e-6)


def test_the_finer_map_has_twice_the_side_of_the_last():
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier

    sides = {finer: build_classifier(get_backbone("small_cnn"), 3, 64, None, activation="sigmoid", pooling="lse",
                                     finer_map=finer).get_layer("backbone").output.shape[1] for finer in (False, True)}
    assert sides[True] == 2 * sides[False]


def test_lse_classifier_needs_a_pooled_backbone_and_no_hidden_layer():
    from dlpipe.errors import ConfigError
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier

    with pytest.raises(ConfigError, match="hidden_units=0"):
        build_classifier(get_backbone("small_cnn"), 3, 32, None, activation="sigmoid", pooling="lse",
                         hidden_units=8)
    with pytest.raises(ConfigError, match="use model.pooling=avg"):
        build_classifier(get_backbone("mlp"), 3, 32, None, activation="sigmoid", pooling="lse")


def test_tflite_float_and_int8_decide_as_keras(lse_model, tmp_path):
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks.multilabel.layers import fold_thresholds

    model, pixels, paths, prep = lse_model
    folded = fold_thresholds(model, THRESHOLDS)
    keras_scores = folded.predict(pixels, verbose=0)
    request = ExportRequest(artifacts.Bundle("multilabel", ["a", "b", "c"], prep), calibration=paths, sample=pixels)
    # int8: decisions only (uint8 scores of an untrained model move by tenths near a threshold), as for the GAP head
    for fmt, agreement, tolerance in (("tflite", 1.0, 1e-4), ("tflite-int8", 0.85, 1.0)):
        runtime = load_runtime(export(folded, fmt, tmp_path / fmt, request))
        scores = np.asarray(runtime.predict(pixels))
        assert np.mean((scores >= 0.5) == (keras_scores >= 0.5)) >= agreement, fmt
        assert np.max(np.abs(scores - keras_scores)) <= tolerance, fmt


def test_onnx_matches_keras(lse_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks.multilabel.layers import fold_thresholds

    model, pixels, _, prep = lse_model
    folded = fold_thresholds(model, THRESHOLDS)
    path = export(folded, "onnx", tmp_path, ExportRequest(artifacts.Bundle("multilabel", ["a", "b", "c"], prep),
                                                          sample=pixels))
    np.testing.assert_allclose(load_runtime(path).predict(pixels), folded.predict(pixels, verbose=0), atol=1e-4)
    assert artifacts.read_record(path)["parity"]["decision_agreement"] == 1.0


def test_the_lse_head_refuses_the_linear_probe_and_a_non_positive_sharpness_in_the_config():
    from dlpipe.pipelines.config import InvalidValue
    from dlpipe.pipelines.image_multilabel.model import MultiLabelModelConfig

    with pytest.raises(InvalidValue, match="use model.pooling=avg"):
        MultiLabelModelConfig(pooling="lse", mode="probe")
    with pytest.raises(InvalidValue, match="must be above 0"):
        MultiLabelModelConfig(pooling="lse", lse_sharpness=0)
    assert MultiLabelModelConfig(pooling="avg", mode="probe").mode == "probe"


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, "lse"),  # the default: ImageNet EfficientNet-Lite0, fine-tuned
    ({"mode": "probe"}, "avg"),  # the probe fits a linear head on pooled features
    ({"weights": "none"}, "avg"),  # from scratch: lse was measured on pretrained features only
    ({"hidden_units": 32}, "avg"),  # the lse head is one 1x1 convolution
    ({"backbone": "mlp", "weights": "none"}, "avg"),  # no feature map to score
    ({"backbone": "tfhub:/some/module"}, "avg"),  # a module's output is already pooled
    ({"pooling": "lse", "weights": "none", "backbone": "small_cnn"}, "lse"),  # said outright, it is kept
    ({"pooling": "avg"}, "avg"),
])
def test_auto_pooling_is_lse_only_for_a_fine_tuned_pretrained_convolutional_backbone(settings, expected):
    from dlpipe.models.backbones import get_backbone
    from dlpipe.pipelines.image_multilabel.model import MultiLabelModelConfig, MultiLabelModelStage

    config = MultiLabelModelConfig(**{"backbone": "efficientnet_lite0", **settings})  # what a CSV's auto picks
    assert MultiLabelModelStage(config).pooling(get_backbone(config.backbone)) == expected
