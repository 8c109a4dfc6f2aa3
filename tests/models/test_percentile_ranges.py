"""Calibration ranges narrowed to a percentile: the rare far-out values are cut, the kept tensors stay as
calibrated, and the int8 file built on them runs."""

from __future__ import annotations

import numpy as np


def test_narrowed_ranges_cut_rare_values_keep_the_named_tensors_and_convert():
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    from dlpipe.models.export.converters import _calibration, int8_float_after
    from dlpipe.models.export.percentile_ranges import narrowed_ranges

    inputs = keras.Input((8, 8, 3), batch_size=1)
    hidden = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="kept")(hidden))
    rng = np.random.default_rng(0)
    samples = [rng.standard_t(2, (1, 8, 8, 3)).astype("float32") for _ in range(16)]  # heavy-tailed
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _calibration(samples)
    calibrated = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=_calibration(samples))
    before = _ranges(flatbuffer_utils, calibrated.calibrated_model)
    output = "StatefulPartitionedCall"  # the converter's name for the model's output (the `kept` layer's)
    after = _ranges(flatbuffer_utils, narrowed_ranges(calibrated.calibrated_model, _calibration(samples), keep=output,
                                                      percentile=99.0))
    hidden_name = next(name for name in before if "hidden" in name)
    kept_name = next(name for name in before if output in name)
    assert 0 < after[hidden_name][1] < 0.9 * before[hidden_name][1], (before[hidden_name], after[hidden_name])
    assert after[kept_name] == before[kept_name]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _calibration(samples)
    interpreter = Interpreter(model_content=int8_float_after(converter, output, narrow_except=output))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], samples[0])
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.corrcoef(got.reshape(-1), model(samples[0]).numpy().reshape(-1))[0, 1] > 0.95


def _ranges(flatbuffer_utils, flatbuffer: bytes) -> dict[str, tuple[float, float]]:
    from dlpipe.models.export.percentile_ranges import recorded_range

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer)).subgraphs[0]
    return {tensor.name.decode(): recorded_range(tensor) for tensor in graph.tensors
            if recorded_range(tensor) is not None}
