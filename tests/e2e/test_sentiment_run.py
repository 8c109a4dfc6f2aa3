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
         "preprocess.sequence_length=12", "model.embedding_dim=16", "model.units=16", "model.ff_dim=32",
         "export.parity_sample=16", "model.embeddings=none"]  # pretrained rows: tests/models/test_pretrained_embeddings.py


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
    assert json.loads((out / "preprocessing.json").read_text())["task"] == "text"
    served = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    texts = tf.constant(["It was really great and wonderful.", "Terrible service, the worst.", "Love this phone"])
    answer = served(text=texts)
    probabilities = answer["probabilities"].numpy()
    assert probabilities.shape == (3, 2)
    assert list(np.argmax(probabilities, axis=1)) == [1, 0, 1]
    assert [label.decode() for label in answer["label"].numpy()] == ["1", "0", "1"]
    from dlpipe.models.runtimes import load_runtime

    # the default tokenizer is WordPiece: model.keras takes ids, which its runtime makes from the shipped vocab.txt
    assert (out / "vocab.txt").is_file()
    reloaded = load_runtime(out, "keras").predict([text.decode() for text in texts.numpy()])
    np.testing.assert_allclose(reloaded, probabilities, atol=1e-5)


def test_cross_domain_validation_file_and_label_errors(sentences_file, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Good good.\tpositive\nBad bad.\tnegative\n")
    result = CliRunner().invoke(main, ["run", "sentiment", "--data", str(sentences_file), "--out", str(tmp_path / "o"),
                                       "--set", f"load.val_path={other}"])
    assert result.exit_code == 2
    assert "validation labels ['negative', 'positive'] never occur in the training data" in result.output
    assert "Traceback" not in result.output


@pytest.mark.long
def test_pretrained_minilm_fine_tunes_and_ships_its_vocabulary(sentences_file, tmp_path):
    """The real MiniLM fine-tuned for an epoch answers raw strings through the vocabulary it ships. (Its
    SavedModel taking raw strings, WordPiece in the graph, is tests/models/test_text_savedmodel.py's, on the
    same real weights.)"""
    out = tmp_path / "minilm"
    sets = ["model.architecture=minilm", "train.epochs=1", "train.batch_size=16", "train.learning_rate=0.0001",
            "train.progress=none", "preprocess.sequence_length=16", "export.formats=[keras]", "export.parity_sample=16"]
    result = api.run("sentiment", data=str(sentences_file), out=out, sets=sets, echo=lambda _: None)
    assert result.metrics["accuracy"] >= 0.8
    preprocessing = json.loads((out / "preprocessing.json").read_text())
    assert preprocessing["tokenizer"] == "wordpiece" and (out / preprocessing["vocab_file"]).is_file()
    from dlpipe.models.runtimes import load_runtime

    texts = ["Great food, lovely service!", "The worst phone I ever had.", "Naïve café — 10/10", ""]
    probabilities = load_runtime(out).predict(texts)
    assert probabilities.shape == (4, 2) and list(probabilities[:2].argmax(axis=1)) == [1, 0]


def test_text_run_exports_to_tflite_and_every_artifact_evaluates_alike(sentences_file, tmp_path):
    """`dlpipe export` a trained GRU run to TFLite; `dlpipe evaluate` scores .keras, SavedModel and .tflite the same."""
    out = tmp_path / "gru"
    sets = [*QUICK, "model.architecture=gru", "train.learning_rate=0.01", "export.formats=[keras, savedmodel]"]
    result = api.run("sentiment", data=str(sentences_file), out=out, sets=sets, echo=lambda _: None)
    runner = CliRunner()
    for quantize in ("none", "dynamic"):
        exported = runner.invoke(main, ["export", str(out), "--format", "tflite", "--quantize", quantize])
        assert exported.exit_code == 0, exported.output
    refused = runner.invoke(main, ["export", str(out), "--format", "tflite", "--quantize", "int8"])
    assert refused.exit_code == 2 and "tflite-int8 is not available for text models" in refused.output
    assert not (out / "model_int8.tflite").exists()
    accuracies = {}
    for artifact in ("model.keras", "savedmodel", "model.tflite", "model_dynamic.tflite"):
        report_file = tmp_path / f"{artifact}.json"
        evaluated = runner.invoke(main, ["evaluate", str(out / artifact), "--data", str(sentences_file),
                                         "--out", str(report_file)])
        assert evaluated.exit_code == 0, evaluated.output
        report = json.loads(report_file.read_text())
        assert report["count"] == 160
        accuracies[artifact] = report["accuracy"]
    assert accuracies["model.keras"] >= 0.8 and result.metrics["accuracy"] >= 0.8
    assert accuracies["savedmodel"] == accuracies["model.tflite"] == accuracies["model.keras"]
    assert abs(accuracies["model_dynamic.tflite"] - accuracies["model.keras"]) <= 0.02
    wrong_data = runner.invoke(main, ["evaluate", str(out / "model.tflite"), "--data", str(tmp_path)])
    assert wrong_data.exit_code == 2 and "text<TAB>label" in wrong_data.output
