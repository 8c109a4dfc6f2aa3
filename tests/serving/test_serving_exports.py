"""`dlpipe serve` serves every artifact `dlpipe export` writes, with the answers `dlpipe predict` gives."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conftest import TINY_TEXT_SETS

from dlpipe.models import artifacts
from dlpipe.pipelines.cli import main
from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import create_app


def predict_labels(model, inputs, tmp_path) -> dict[str, str]:
    out = tmp_path / f"rows-{abs(hash(str(model)))}.jsonl"
    result = CliRunner().invoke(main, ["predict", str(model), *map(str, inputs), "--out", str(out), "--top-k", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["input"]: row["label"] for row in map(json.loads, out.read_text().splitlines())}


@pytest.fixture(scope="module")
def image_exports(trained_run, tmp_path_factory):
    """The tiny run exported to int8 .tflite and SavedModel, each alone in a folder with its side files."""
    _, run = trained_run
    work = tmp_path_factory.mktemp("exports")
    for fmt in ("tflite-int8", "savedmodel"):
        result = CliRunner().invoke(main, ["export", str(run), "--format", fmt.split("-")[0], *(
            ["--quantize", "int8"] if fmt == "tflite-int8" else []), "--out", str(work / fmt)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    only_int8 = work / "int8-only"
    only_int8.mkdir()
    for name in ("model_int8.tflite", "labels.txt", "preprocessing.json"):
        shutil.copy(work / "tflite-int8" / name, only_int8 / name)
    return only_int8, work / "savedmodel" / "savedmodel"


@pytest.mark.parametrize("which", ["int8", "savedmodel"])
def test_serve_answers_like_predict_on_the_same_image_artifact(which, trained_run, image_exports, tmp_path):
    root, _ = trained_run
    source = image_exports[0] if which == "int8" else image_exports[1]
    photos = sorted((root / "blue").iterdir())[:6] + sorted((root / "red").iterdir())[:6]
    expected = predict_labels(source, photos, tmp_path)
    repository = ModelRepository(source)
    served = repository.models()[0]
    assert served.runtime.format == ("tflite" if which == "int8" else "savedmodel")
    with TestClient(create_app(repository)) as client:
        name = served.name
        instances = [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in photos]
        response = client.post(f"/v1/models/{name}:predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        served_labels = [row["label"] for row in response.json()["predictions"]]
        assert served_labels == [expected[str(p)] for p in photos]
        # held to the Keras model's accuracy on these labelled photos: int8 may lose one of the 12, SavedModel none
        keras_labels = predict_labels(trained_run[1] / "model.keras", photos, tmp_path)
        truth = [p.parent.name for p in photos]
        keras_accuracy = sum(keras_labels[str(p)] == t for p, t in zip(photos, truth)) / len(photos)
        served_accuracy = sum(label == t for label, t in zip(served_labels, truth)) / len(photos)
        assert keras_accuracy >= 0.9 and served_accuracy >= keras_accuracy - (0.1 if which == "int8" else 0.0)
        classified = client.post(f"/v1/models/{name}:classify", files={"file": ("x.jpg", photos[0].read_bytes())})
        assert classified.status_code == 200 and classified.json()["label"] == expected[str(photos[0])]
        assert client.get(f"/v1/models/{name}/metadata").json()["format"] in ("tflite", "savedmodel")


def test_serve_answers_like_predict_on_a_text_tflite(sentences_file, tmp_path):
    from dlpipe.pipelines import api

    run = tmp_path / "run"
    sets = [*TINY_TEXT_SETS, "export.formats=[keras, tflite-dynamic]"]
    api.run("sentiment", data=str(sentences_file), out=run, sets=sets, echo=lambda _: None)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model_dynamic.tflite", alone / "model_dynamic.tflite")  # no side files: all are in the file
    texts = tmp_path / "texts.txt"
    lines = ["the food was great", "terrible awful service", "love it", "worst phone ever", "nice and perfect"]
    texts.write_text("\n".join(lines) + "\n")
    expected = predict_labels(alone / "model_dynamic.tflite", [texts], tmp_path)
    assert expected == predict_labels(run, [texts], tmp_path)  # auto picks an artifact that agrees with Keras
    with TestClient(create_app(ModelRepository(alone / "model_dynamic.tflite"))) as client:
        response = client.post("/v1/models/model_dynamic:predict", json={"instances": lines})
        assert response.status_code == 200, response.text
        served_labels = [row["label"] for row in response.json()["predictions"]]
        assert served_labels == [expected[f"{texts}:{i + 1}"] for i in range(len(lines))]
        # and right as often as the Keras model on these labelled lines (1: positive words)
        truth = ["1", "0", "1", "0", "1"]
        keras_labels = predict_labels(run / "model.keras", [texts], tmp_path)
        keras_right = sum(keras_labels[f"{texts}:{i + 1}"] == t for i, t in enumerate(truth))
        assert keras_right >= 4 and sum(label == t for label, t in zip(served_labels, truth)) >= keras_right
        assert client.post("/v1/models/model_dynamic:classify", json={"text": lines[1]}).json()["label"] == \
            expected[f"{texts}:2"]


def test_artifact_choice_is_recorded_and_explicit_choices_are_checked(trained_run):
    _, run = trained_run
    path, why = artifacts.choose_artifact(run, "keras")
    assert path == run / "model.keras" and why == "keras"
    with pytest.raises(Exception, match="has no int8 artifact"):
        artifacts.choose_artifact(run, "int8")
    with pytest.raises(Exception, match="unknown artifact 'int4'"):
        artifacts.choose_artifact(run, "int4")
