"""The train step is traced once: `build_before_fit` creates the optimizer's and metrics' variables first (Keras 3
creates them inside the first trace, and TensorFlow then traced the step a second time); the EXIF turn is one
function, traced once for however many decoding graphs call it."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dlpipe.models.trace_once import build_before_fit


class Counted(keras.Sequential):
    traces = 0

    def train_step(self, data):
        Counted.traces += 1
        return super().train_step(data)


def small_model() -> Counted:
    Counted.traces = 0
    model = Counted([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def test_keras_alone_traces_the_step_twice_and_built_first_once():
    x, y = data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    small_model().fit(dataset, epochs=2, verbose=0)
    assert Counted.traces == 2  # the premise: if Keras builds first itself one day, this helper can go
    model = small_model()
    build_before_fit(model, dataset)  # from the dataset's element_spec, no batch read
    history = model.fit(dataset, epochs=2, verbose=0)
    assert Counted.traces == 1 and len(history.history["loss"]) == 2


def test_arrays_build_the_same_way_and_training_is_unchanged():
    x, y = data()
    keras.utils.set_random_seed(1)
    plain = small_model()
    plain_loss = plain.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    keras.utils.set_random_seed(1)
    built = small_model()
    build_before_fit(built, (x, y))
    built_loss = built.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    assert Counted.traces == 1
    np.testing.assert_allclose(built_loss, plain_loss, rtol=1e-6)


def test_the_exif_turn_is_traced_once_for_every_decoding_graph():
    from dlpipe.data.exif import upright
    from dlpipe.data.preprocess import ImagePreprocessing, preprocess_bytes

    before = upright.experimental_get_tracing_count()  # other tests in this process may have traced it (TensorFlow
    # traces a function again under another device scope or distribution strategy: once per such context)
    for size in (16, 24, 32):  # three different graphs, as a run's pipelines, exports and checks make
        tf.function(lambda contents, s=size: preprocess_bytes(contents, ImagePreprocessing(image_size=s))
                    ).get_concrete_function(tf.TensorSpec([], tf.string))
    assert upright.experimental_get_tracing_count() - before <= 1
