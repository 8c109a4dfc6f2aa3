"""models/export/tflite_source.py: a model's .tflite files convert from one SavedModel written once, and give the
same tensors and outputs as TensorFlow's own Keras path; models/export.scratch_space keeps it until the last."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from dlpipe.models.export import scratch_space  # noqa: E402
from dlpipe.models.export import tflite_source  # noqa: E402
from dlpipe.models.export.converters import convert  # noqa: E402


@pytest.fixture(scope="module")
def model() -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def answer(flatbuffer: bytes, pixels: np.ndarray) -> tuple[list, np.ndarray]:
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details() + interpreter.get_output_details()
    signature = [(d["name"], d["shape"].tolist(), d["dtype"], d["quantization"]) for d in details]
    interpreter.set_tensor(details[0]["index"], pixels)
    interpreter.invoke()
    return signature, interpreter.get_tensor(details[-1]["index"])


def test_each_model_is_written_once_and_converts_as_from_keras_model_does(model, tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    expected = {q: answer(convert(tf.lite.TFLiteConverter.from_keras_model(model), q), pixels)
                for q in ("none", "float16", "dynamic")}
    written = []
    real_write = tflite_source._write_inference_savedmodel
    monkeypatch.setattr(tflite_source, "_write_inference_savedmodel",
                        lambda m, folder: (written.append(folder), real_write(m, folder)))
    with scratch_space(tmp_path) as scratch, tflite_source.one_source_per_model():
        for quantize in ("none", "float16", "dynamic"):
            with scratch_space(tmp_path / "a-format's-own-folder"):  # an export inside: the outer scratch is kept
                signature, output = answer(convert(tflite_source.tflite_converter(model), quantize), pixels)
            assert signature == expected[quantize][0]
            np.testing.assert_array_equal(output, expected[quantize][1])
        assert len(written) == 1 and written[0].startswith(str(scratch))
        wrapped = []  # a derived model (the detector's MediaPipe wrapper) is built and written once too

        def wrap(inner):
            wrapped.append(inner)
            return keras.Model(inner.inputs, inner.outputs)

        for _ in range(2):
            tflite_source.tflite_converter(model, wrap=wrap)
        assert len(wrapped) == 1 and len(written) == 2
    assert not (tmp_path / ".dlpipe-scratch").exists() and not (tmp_path / "a-format's-own-folder").exists()
    # outside the block: TensorFlow's own path, nothing shared
    tflite_source.tflite_converter(model)
    assert len(written) == 2
