"""A .tflite runs a batch's odd tail on an interpreter it already has, padded, instead of building new ones."""

from __future__ import annotations

import numpy as np

from dlpipe.models.runtimes import load_runtime


def test_a_tail_rides_on_an_allocated_interpreter_and_answers_as_row_by_row(tiny_tflite):
    runtime = load_runtime(tiny_tflite / "model.tflite")
    pixels = np.random.default_rng(0).uniform(0, 255, (53, 16, 16, 3)).astype(np.float32)
    together = runtime.predict(pixels)  # 32, then the 21 left on the 32-row interpreter (11 rows of padding)
    assert sorted(runtime._sized) == [1, 32]
    one_by_one = np.concatenate([runtime.predict(pixels[i:i + 1]) for i in range(len(pixels))])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    runtime.predict(pixels[:5])  # no interpreter of 5 to 10 rows yet: a new one of 4, then the last row on the 1-row one
    assert sorted(runtime._sized) == [1, 4, 32]
