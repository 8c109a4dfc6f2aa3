"""Failures whose cause is plain say the cause and the remedy in one line, not `internal error`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SETS
from dlpipe.errors import ConfigError, RunStateError


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_small_cnn_refuses_an_input_it_cannot_pool_before_building(color_folder, tmp_path):
    from dlpipe.models.backbones import get_backbone
    from dlpipe.pipelines import api

    with pytest.raises(ConfigError, match=r"model.image_size: small_cnn needs inputs of at least 16 px \(received 8\)"):
        api.run("image-classify", data=str(color_folder), out=tmp_path / "out", sets=[*TINY_SETS, "model.image_size=8"],
                echo=lambda _: None)
    get_backbone("small_cnn").check_input_size(16)  # the smallest it builds: four 2x2 poolings down to 1x1
    get_backbone("small_cnn").build_with((16, 16, 3), None)
    with pytest.raises(ConfigError, match="at least 32"):
        get_backbone("mobilenet_v2").check_input_size(24)


def test_a_damaged_checkpoint_names_the_file_on_resume(tmp_path):
    from dlpipe.pipelines.training.checkpoints import backup_callback, load_checkpoint

    model = tiny_model()
    good = tmp_path / "train.weights.h5"
    model.save_weights(good)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(RunStateError, match=r"truncated.weights.h5: checkpoint is damaged .* delete it .*--overwrite"):
        load_checkpoint(model, truncated)
    load_checkpoint(model, good)  # a sound file still loads

    backup = tmp_path / "backup_train"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(np.random.default_rng(0).bytes(3000))
    (backup / "training_metadata.json").write_text('{"epoch": 1}')
    x, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
    with pytest.raises(RunStateError, match="backup_train: checkpoint is damaged"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[backup_callback(backup)])
    (backup / "latest.weights.h5").unlink()
    (backup / "training_metadata.json").write_text('{"epoch": ')  # cut off mid-write
    with pytest.raises(RunStateError, match="backup_train: checkpoint is damaged"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[backup_callback(backup)])
