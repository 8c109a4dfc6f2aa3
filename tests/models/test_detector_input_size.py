"""A detector trained at one input size runs at another with the same weights (`at_input_size`)."""

from __future__ import annotations

import numpy as np
from dlpipe.models.detector import STRIDE, at_input_size, build_detector, detection_model


def test_the_same_weights_at_a_larger_size_answer_as_the_network_built_at_that_size():
    trained, _ = build_detector("small", 3, 64, None, (16, 16, 8), 8)
    trained.set_weights([np.random.default_rng(i).normal(0, 0.2, w.shape) for i, w in enumerate(trained.get_weights())])
    larger = at_input_size(trained, 128)
    built, _ = build_detector("small", 3, 128, None, (16, 16, 8), 8)
    built.set_weights(trained.get_weights())
    assert larger.input.shape[1:3] == (128, 128) and larger.output.shape[1:3] == (128 // STRIDE, 128 // STRIDE)
    photos = np.random.default_rng(0).uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    np.testing.assert_allclose(larger.predict_on_batch(photos), built.predict_on_batch(photos), atol=1e-5)
    assert not np.allclose(larger.predict_on_batch(photos)[..., :3], 0, atol=1e-3)  # the weights came along


def test_the_size_it_was_built_at_returns_the_model_itself_and_decoding_follows_the_new_size():
    trained, _ = build_detector("small", 2, 64, None, (16, 16, 8), 8)
    assert at_input_size(trained, 64) is trained
    rows = detection_model(at_input_size(trained, 96), 2, 10).predict_on_batch(np.zeros((1, 96, 96, 3), np.float32))
    assert rows.shape == (1, 10, 6)
