"""A phase with a moving average of the weights: validation, the kept checkpoint and the final model are the average,
the backup the raw weights (what a resumed run continues from)."""

from __future__ import annotations

import numpy as np

from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import TrainConfig
from dlpipe.pipelines.training.phases import FitSettings, Phase, average_momentum, fit_phase

MOMENTUM = 0.8


def _regression(tmp_path):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    targets = features @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3
    data = tf.data.Dataset.from_tensor_slices((features, targets)).batch(4)  # 64 steps in 4 epochs
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    ctx = RunContext(out_dir=tmp_path, seed=0, config=None, task=None, echo=lambda line: None)
    ctx.history = {"phases": []}
    return model, ctx, data


class _ExpectedAverage:
    """Keras' update, replayed from the raw weights after each step: average = m * average + (1 - m) * weights."""

    def __init__(self):
        import keras

        class Recorder(keras.callbacks.Callback):
            def on_train_batch_end(inner, batch, logs=None):
                raw = [np.array(w) for w in inner.model.trainable_weights]
                self.average = raw if self.average is None else [
                    MOMENTUM * a + (1 - MOMENTUM) * w for a, w in zip(self.average, raw)]
                self.raw = raw

            def on_epoch_end(inner, epoch, logs=None):
                self.per_epoch.append([a.copy() for a in self.average])

        self.average, self.raw, self.per_epoch = None, None, []
        self.callback = Recorder()


def test_validation_checkpoint_and_final_weights_are_the_average(tmp_path):
    model, ctx, data = _regression(tmp_path)
    expected = _ExpectedAverage()
    ctx.extra_callbacks = [expected.callback]
    cfg = TrainConfig(early_stopping_patience=0, lr_schedule="constant", tensorboard=False, progress="none")
    settings = FitSettings(loss="mse", metrics=[], optimizer="sgd", warmup_fraction=0.0, ema_momentum=MOMENTUM)
    fit_phase(ctx, model, Phase("train", 4, 0.05, None), (data, data), cfg, settings)

    history = ctx.history["phases"][0]["history"]
    best = int(np.argmin(history["val_loss"]))
    final = [np.array(w) for w in model.trainable_weights]
    for got, want in zip(final, expected.per_epoch[best]):  # the kept epoch's average, not its raw weights
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(final[0], expected.raw[0], atol=1e-4)  # the raw weights differ: the test can fail
    model.compile(loss="mse")
    assert np.isclose(model.evaluate(data, verbose=0), history["val_loss"][best], rtol=1e-4)  # validated = kept


def test_a_killed_phase_resumes_to_the_unbroken_runs_average(tmp_path):
    import keras
    import pytest

    class Killed(Exception):
        pass

    class KillAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # after epoch 2's backup: raw weights, the average in the optimizer
                raise Killed

    cfg = TrainConfig(early_stopping_patience=0, lr_schedule="constant", tensorboard=False, progress="none")
    settings = FitSettings(loss="mse", metrics=[], optimizer="sgd", warmup_fraction=0.0, ema_momentum=MOMENTUM)
    finals = []
    for name, kill in (("unbroken", False), ("killed", True)):
        model, ctx, data = _regression(tmp_path / name)
        if kill:
            ctx.extra_callbacks = [KillAtEpoch()]
            with pytest.raises(Killed):
                fit_phase(ctx, model, Phase("train", 4, 0.05, None), (data, None), cfg, settings)
            model, ctx, data = _regression(tmp_path / name)  # a new process: fresh weights, then the backup
        fit_phase(ctx, model, Phase("train", 4, 0.05, None), (data, None), cfg, settings)
        finals.append([np.array(w) for w in model.trainable_weights])
    for resumed, unbroken in zip(finals[1], finals[0]):
        np.testing.assert_allclose(resumed, unbroken, rtol=1e-5, atol=1e-6)


def test_a_short_phase_averages_over_at_most_a_tenth_of_its_steps():
    assert average_momentum(0.99, 1320) == 0.99  # the detector's fine-tuning: 44 epochs of 30 steps
    assert np.isclose(average_momentum(0.99, 40), 0.75)  # a tiny run: about 4 steps, not 100
    assert average_momentum(0.99, 8) == 0.0 and average_momentum(0.0, 1000) == 0.0  # off


def test_a_phase_too_short_to_average_trains_without_it(tmp_path):
    model, ctx, data = _regression(tmp_path)
    cfg = TrainConfig(early_stopping_patience=0, lr_schedule="constant", tensorboard=False, progress="none")
    settings = FitSettings(loss="mse", metrics=[], optimizer="sgd", warmup_fraction=0.0, ema_momentum=0.99)
    fit_phase(ctx, model, Phase("train", 1, 0.05, None), (data.take(2), data), cfg, settings)  # 2 steps
    assert not model.optimizer.use_ema and ctx.history["phases"][0]["history"]["val_loss"]
