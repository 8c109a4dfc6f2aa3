"""Quantisation-aware fine-tuning (models/quantize_aware.py): the rounded copy computes what the int8 file computes,
rounds only tensors the int8 file has, and training it trains the original network."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from dlpipe.models.quantize_aware import int8_rounded, measure_ranges, rounding_layers, set_ranges


def _conv_net() -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    branch = keras.layers.Conv2D(8, 1, activation="relu", name="branch")(x)
    x = keras.layers.Add(name="add")([x, branch])
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D(name="pool")(x))
    return keras.Model(inputs, outputs, name="net")


def test_rounding_follows_the_tensors_int8_keeps():
    """A convolution's output read only by its batch norm, and the batch norm's read only by a ReLU, are folded and
    fused by TFLite: no rounding there; every other layer's output is rounded once."""
    rounded = int8_rounded(_conv_net())
    assert [layer.name for layer in rounding_layers(rounded)] == [
        "relu_int8", "branch_int8", "add_int8", "pool_int8", "out_int8"]
    again = int8_rounded(_conv_net())  # the shared layers' extra calls do not change what a second copy rounds
    assert len(rounding_layers(again)) == 5


def test_the_rounded_copy_is_closer_to_the_int8_file_than_the_float_model():
    from ai_edge_litert.interpreter import Interpreter
    from dlpipe.models.detector import build_detector

    keras.utils.set_random_seed(0)
    model, _ = build_detector("small", 3, 64, None)
    rng = np.random.default_rng(0)
    calibration = np.clip(rng.normal(128, 60, (16, 64, 64, 3)), 0, 255).astype(np.float32)
    photos = np.clip(rng.normal(128, 60, (4, 64, 64, 3)), 0, 255).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([photo[None]] for photo in calibration)
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    int8_outputs = []
    for photo in photos:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photo[None])
        interpreter.invoke()
        int8_outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    rounded = int8_rounded(model)
    np.testing.assert_allclose(rounded(photos), model(photos), atol=1e-6)  # pass-through until ranges are set
    set_ranges(rounded, measure_ranges(rounded, [calibration[:8], calibration[8:]], None, None))
    float_error = np.abs(model(photos).numpy() - int8_outputs).mean()
    rounded_error = np.abs(rounded(photos).numpy() - int8_outputs).mean()
    # measured 0.0032 against 0.0052: what is left is the weights' own int8 rounding
    assert rounded_error < 0.8 * float_error, (rounded_error, float_error)


def test_ranges_narrow_to_the_percentile_except_the_kept_layers():
    rounded = int8_rounded(_conv_net())
    batch = np.random.default_rng(1).normal(0, 1, (32, 16, 16, 3)).astype(np.float32)
    batch[0, 0, 0] = 500.0  # one far-out value: the extremes follow it, the percentile does not
    extremes = measure_ranges(rounded, [batch], None, None)
    narrowed = measure_ranges(rounded, [(batch, None)], keep_extremes="^out$", percentile=99.0)
    assert narrowed["relu_int8"][1] < 0.5 * extremes["relu_int8"][1]
    assert narrowed["out_int8"] == extremes["out_int8"]  # kept: the extremes
    assert all(low <= 0.0 <= high for low, high in narrowed.values())  # zero is always a level


def test_fitting_the_rounded_copy_trains_the_original_and_saves_alike(tmp_path):
    model = _conv_net()
    rounded = int8_rounded(model)
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, (16, 16, 16, 3)).astype(np.float32), rng.normal(0, 1, (16, 2)).astype(np.float32)
    set_ranges(rounded, measure_ranges(rounded, [x], None, None))
    before = model.get_layer("conv").kernel.numpy().copy()
    rounded.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    rounded.fit(x, y, epochs=2, verbose=0)
    assert not np.allclose(model.get_layer("conv").kernel.numpy(), before)
    rounded.save_weights(tmp_path / "int8.weights.h5")
    fresh = int8_rounded(_conv_net())
    fresh.load_weights(tmp_path / "int8.weights.h5")
    np.testing.assert_array_equal(fresh.get_layer("conv").kernel.numpy(), model.get_layer("conv").kernel.numpy())


def test_rounding_needs_every_range():
    rounded = int8_rounded(_conv_net())
    with pytest.raises(ValueError, match="no int8 range for 4 of 5 rounded layers"):
        set_ranges(rounded, {"relu_int8": (0.0, 1.0)})
