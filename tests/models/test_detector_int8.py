"""A trained detector's int8 file keeps the heat map's negative logits: the quantiser gives a concatenation's inputs
one scale, and the head map joins the heat-map logits (mostly far below 0) to the box log-distances (above 0)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def test_int8_scores_background_cells_as_keras_does_not_at_one_half():
    from ai_edge_litert.interpreter import Interpreter
    from dlpipe.models.detector import build_detector, detection_model
    from dlpipe.models.export.converters import _calibration, int8_float_after
    from dlpipe.models.tasks.detect.export import INT8_FLOAT_TENSORS, convert_detector

    keras.utils.set_random_seed(0)
    network, _ = build_detector("small", 2, 64, None)
    for name, bias in (("heatmap_out", -8.0), ("box_out", 1.0)):  # background everywhere; boxes 2.7 cells a side
        layer = network.get_layer(name)
        layer.kernel.assign(layer.kernel * 0.01)
        layer.bias.assign(np.full(layer.bias.shape, bias, np.float32))
    model = detection_model(network, 2)
    photos = np.random.default_rng(0).uniform(0, 255, (9, 1, 64, 64, 3)).astype(np.float32)

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration(list(photos[1:]))

    interpreter = Interpreter(model_content=convert_detector(
        model, configure, lambda converter: int8_float_after(converter, INT8_FLOAT_TENSORS)))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photos[0])
    interpreter.invoke()
    scores = {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}["scores"]
    expected = model(photos[0]).numpy()[0][:, 4]
    assert expected.max() < 0.01  # sigmoid(-8): nothing is an object
    # with the head map's concatenation in int8 (on the box head's [0, 2.7] scale), every score read sigmoid(0) = 0.5
    np.testing.assert_allclose(np.sort(scores)[::-1][:10], np.sort(expected)[::-1][:10], atol=0.01)
