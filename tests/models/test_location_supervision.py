"""Box supervision's training wrapper: the task's model plus a per-location loss, sharing its weights."""

from __future__ import annotations

import keras
import numpy as np
from dlpipe.models.classifier import LOCATION_LOGITS_LAYER_NAME
from dlpipe.models.location_supervision import has_location_logits, location_grid, supervised_model


def spatial_model() -> keras.Model:
    photo = keras.Input((8, 8, 3))
    logits = keras.layers.Conv2D(2, 1, name=LOCATION_LOGITS_LAYER_NAME)(photo)
    pooled = keras.layers.GlobalMaxPooling2D()(logits)
    return keras.Model(photo, keras.layers.Activation("sigmoid")(pooled))


def test_the_loss_adds_the_weighted_per_location_cross_entropy():
    model = spatial_model()
    wrapped = supervised_model(model, weight=0.5)
    rng = np.random.default_rng(0)
    photos = rng.random((4, 8, 8, 3)).astype("float32")
    targets = rng.random((4, 8, 8, 2)).astype("float32")  # covered fractions
    labels = (rng.random((4, 2)) > 0.5).astype("float32")
    model.compile(loss="binary_crossentropy")
    wrapped.compile(loss="binary_crossentropy")
    logits = keras.Model(model.input, model.get_layer(LOCATION_LOGITS_LAYER_NAME).output).predict(photos, verbose=0)
    probability = 1 / (1 + np.exp(-logits))
    location = -np.mean(targets * np.log(probability) + (1 - targets) * np.log(1 - probability))
    got = wrapped.evaluate((photos, targets), labels, verbose=0)
    np.testing.assert_allclose(got, model.evaluate(photos, labels, verbose=0) + 0.5 * location, rtol=1e-4)
    # the exported model is the task's own: one input, the same scores
    np.testing.assert_allclose(wrapped.predict((photos, targets), verbose=0), model.predict(photos, verbose=0))
    assert has_location_logits(model) and location_grid(model) == 8


def test_weights_trained_through_the_wrapper_are_the_models_and_its_files_load_both_ways(tmp_path):
    model = spatial_model()
    wrapped = supervised_model(model, weight=1.0)
    wrapped.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(1)
    before = model.get_layer(LOCATION_LOGITS_LAYER_NAME).get_weights()[0].copy()
    wrapped.fit((rng.random((8, 8, 8, 3)), rng.random((8, 8, 8, 2))), rng.integers(0, 2, (8, 2)).astype("float32"),
                epochs=2, verbose=0)
    assert not np.allclose(before, model.get_layer(LOCATION_LOGITS_LAYER_NAME).get_weights()[0])
    wrapped.save_weights(tmp_path / "wrapped.weights.h5")
    fresh = spatial_model()
    fresh.load_weights(tmp_path / "wrapped.weights.h5")
    photos = rng.random((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(fresh.predict(photos, verbose=0), model.predict(photos, verbose=0), rtol=1e-6)
    model.save_weights(tmp_path / "model.weights.h5")
    supervised_model(spatial_model(), 1.0).load_weights(tmp_path / "model.weights.h5")
