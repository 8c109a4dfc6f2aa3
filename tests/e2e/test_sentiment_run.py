"""`dlpipe run sentiment` end to end: every architecture learns, and the export takes raw strings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from dlpipe.pipelines import api
from dlpipe.pipelines.cli import main

QUICK = ["train.epochs=6", "train.batch_size=16", "train.progress=none", "train.early_stopping_patience=0",
         "preprocess.sequence_length=12", "model.embedding_dim=16", "model.units=16", "model.ff_dim=32"]


@pytest.mark.parametrize("architecture", ["lstm", "gru", "bilstm", "transformer"])
def test_each_architecture_beats_chance(sentences_file, tmp_path, architecture):
    sets = [*QUICK, f"model.architecture={architecture}", "export.formats=[keras]", "train.learning_rate=0.01"]
    result = api.run("sentiment", data=str(sentences_file), out=tmp_path / architecture, sets=sets, echo=lambda _: None)
    assert result.metrics["accuracy"] >= 0.8, result.metrics  # chance is 0.5


def test_cli_run_exports_a_model_that_takes_raw_strings(sentences_file, tmp_path):
    out = tmp_path / "run"
    args = ["run", "sentiment", "--data", str(sentences_file), "--out", str(out), "--set", "train.learning_rate=0.01"]
    result = CliRunner().invoke(main, args + [arg for s in QUICK for arg in ("--set", s)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (out / "labels.txt").read_text().split() == ["0", "1"]
    assert json.loads((out / "preprocessing.json").read_text())["kind"] == "text"
    served = tf.saved_model.load(str(out / "savedmodel"))
    texts = tf.constant(["It was really great and wonderful.", "Terrible service, the worst.", "Love this phone"])
    probabilities = served.serve(texts).numpy()
    assert probabilities.shape == (3, 2)
    assert list(np.argmax(probabilities, axis=1)) == [1, 0, 1]
    import keras

    import dlpipe.models.text_layers  # noqa: F401  (registers the custom layers)

    reloaded = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0), probabilities, atol=1e-5)


def test_cross_domain_validation_file_and_label_errors(sentences_file, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Good good.\tpositive\nBad bad.\tnegative\n")
    result = CliRunner().invoke(main, ["run", "sentiment", "--data", str(sentences_file), "--out", str(tmp_path / "o"),
                                       "--set", f"load.val_path={other}"])
    assert result.exit_code == 2
    assert "validation labels ['negative', 'positive'] never occur in the training data" in result.output
    assert "Traceback" not in result.output


def test_pretrained_minilm_fine_tunes_and_ships_its_vocabulary(sentences_file, tmp_path):
    out = tmp_path / "minilm"
    sets = ["model.architecture=minilm", "train.epochs=2", "train.batch_size=16", "train.learning_rate=0.0001",
            "train.progress=none", "preprocess.sequence_length=16", "export.formats=[keras]"]
    result = api.run("sentiment", data=str(sentences_file), out=out, sets=sets, echo=lambda _: None)
    assert result.metrics["accuracy"] >= 0.8
    preprocessing = json.loads((out / "preprocessing.json").read_text())
    assert preprocessing["tokenizer"] == "wordpiece" and (out / preprocessing["vocab_file"]).is_file()
