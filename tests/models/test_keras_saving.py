"""models/keras_saving.py: after cache_skipsets(), Keras' saving walk reads its skip sets instead of building
reference objects on every save, and what it saves is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras.src.backend.common import global_state  # noqa: E402
from keras.src.layers.layer import Layer  # noqa: E402

from dlpipe.models.keras_saving import LOOKUP_KEY, SAVEABLE_TYPES, cache_skipsets  # noqa: E402


def test_saving_builds_no_reference_layers_and_saves_the_same_weights(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)
    for obj_type in SAVEABLE_TYPES:  # as after keras.backend.clear_session()
        global_state.set_global_attribute(LOOKUP_KEY.format(obj_type), None)
    built = []
    original_init = Layer.__init__
    monkeypatch.setattr(Layer, "__init__", lambda self, *a, **k: (built.append(type(self)), original_init(self, *a, **k))[1])
    model.save_weights(tmp_path / "before.weights.h5")
    assert built, "Keras 3.15's saving built reference layers on every save: the premise of keras_saving"
    cache_skipsets()
    built.clear()
    model.save_weights(tmp_path / "after.weights.h5")
    model.save_weights(tmp_path / "after.weights.h5")
    assert built == []
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    twin.load_weights(tmp_path / "after.weights.h5")
    for ours, theirs in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
