"""The multi-label classifier read off a detector's heat map: scores, folded thresholds, the training wrapper."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def detector():
    import keras
    from dlpipe.models.detector import build_detector

    keras.utils.set_random_seed(0)
    model, _ = build_detector("small", 3, 64)
    return model


def test_a_labels_score_is_the_sigmoid_of_its_highest_heat_map_logit(detector):
    import keras
    from dlpipe.models.tasks.multilabel.heatmap_head import HEAT_LOGITS_LAYER, heatmap_classifier

    classifier = heatmap_classifier(detector)
    photos = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    logits = keras.Model(detector.input, detector.get_layer(HEAT_LOGITS_LAYER).output).predict(photos, verbose=0)
    expected = 1 / (1 + np.exp(-logits.reshape(4, -1, 3).max(axis=1)))
    np.testing.assert_allclose(classifier.predict(photos, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert classifier.count_params() < detector.count_params()  # the box head is left out


def test_thresholds_fold_into_the_class_heads_bias_exactly(detector):
    from dlpipe.models.tasks.multilabel.heatmap_head import heatmap_classifier
    from dlpipe.models.tasks.multilabel.layers import ThresholdShift, fold_thresholds, shifted_scores

    classifier = heatmap_classifier(detector)
    thresholds = [0.2, 0.5, 0.7]
    folded = fold_thresholds(classifier, thresholds)
    assert not any(isinstance(layer, ThresholdShift) for layer in folded.layers)  # the bias moved, no new op
    photos = np.random.default_rng(1).uniform(0, 255, (6, 64, 64, 3)).astype(np.float32)
    scores = classifier.predict(photos, verbose=0)
    np.testing.assert_allclose(folded.predict(photos, verbose=0), shifted_scores(scores, thresholds), atol=1e-5)


def test_the_training_wrapper_adds_centernets_loss_on_the_shared_layers(detector):
    import tensorflow as tf
    from dlpipe.models.centernet_loss import CenterNetLoss, encode_targets
    from dlpipe.models.tasks.multilabel.heatmap_head import (
        HEAT_LOGITS_LAYER, heatmap_classifier, heatmap_supervised_model,
    )

    classifier = heatmap_classifier(detector)
    wrapper = heatmap_supervised_model(detector, classifier)
    photos = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    targets = np.stack([encode_targets(np.array([[0.1, 0.1, 0.5, 0.6]]), np.array([1]), 16, 3).numpy(),
                        encode_targets(np.zeros((0, 4)), np.zeros((0,), np.int32), 16, 3).numpy()])
    expected = CenterNetLoss(3)(targets, detector.predict(photos, verbose=0))
    wrapper([photos, targets], training=False)
    assert len(wrapper.losses) == 1
    assert float(wrapper.losses[0]) == pytest.approx(float(expected), rel=1e-4)
    # the classifier's layers are the wrapper's, and the added loss reaches its class head and the box head
    assert classifier.get_layer(HEAT_LOGITS_LAYER) is wrapper.get_layer(HEAT_LOGITS_LAYER)
    with tf.GradientTape() as tape:
        wrapper([photos, targets], training=True)
        loss = tf.add_n(wrapper.losses)
    heads = [wrapper.get_layer(HEAT_LOGITS_LAYER).kernel, wrapper.get_layer("box_out").kernel]
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in tape.gradient(loss, heads))
