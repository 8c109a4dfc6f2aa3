"""ONNX exports answer as the Keras model does, through onnxruntime, without TensorFlow at prediction time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.data.datasets import batched, decoded_images
from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, export, support
from dlpipe.models.runtimes import OnnxRuntime, load_runtime
from dlpipe.models.tasks import get_task
from dlpipe.pipelines.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def onnx_export(trained_run, tmp_path_factory):
    """`dlpipe export RUN --format onnx --out OUT` of the tiny blue/red run: (data folder, run, OUT)."""
    root, run = trained_run
    out = tmp_path_factory.mktemp("onnx")
    result = CliRunner().invoke(main, ["export", str(run), "--format", "onnx", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "agrees with the Keras model on 100.0%" in result.output
    return root, run, out


def test_onnx_scores_match_keras_and_its_parity_is_recorded(onnx_export):
    root, run, out = onnx_export
    keras_runtime = load_runtime(run, "keras")
    paths = get_task("image").collect_inputs([str(root)]).ids
    pixels = next(iter(batched(decoded_images(paths, None, keras_runtime.preprocessing), len(paths)))).numpy()
    runtime = load_runtime(out / "model.onnx")
    assert isinstance(runtime, OnnxRuntime) and runtime.class_names == keras_runtime.class_names
    np.testing.assert_allclose(runtime.predict(pixels), keras_runtime.predict(pixels), atol=1e-4)
    record = json.loads((out / "artifacts.json").read_text())["model.onnx"]
    assert record["format"] == "onnx" and artifacts.parity_state(record["parity"]) == "faithful"
    assert record["parity"]["max_abs_diff"] < 1e-4 and record["parity"]["seconds_per_item"] > 0
    chosen = load_runtime(out, "onnx")
    assert isinstance(chosen, OnnxRuntime) and chosen.chosen_because == "onnx"
    automatic = load_runtime(out)  # the faithful .onnx is the fastest checked artifact in its export folder
    assert isinstance(automatic, OnnxRuntime) and automatic.chosen_because.startswith("onnx (fastest within 1%")


def test_auto_takes_the_onnx_file_only_while_it_is_the_fastest_faithful_artifact(onnx_export, tmp_path):
    import shutil

    _, run, out = onnx_export
    folder = tmp_path / "both"
    shutil.copytree(out, folder)
    shutil.copy(run / "model.keras", folder / "model.keras")
    manifest = json.loads((folder / "artifacts.json").read_text())
    manifest["model.onnx"]["parity"]["seconds_per_item"] = 1e-6
    (folder / "artifacts.json").write_text(json.dumps(manifest))
    assert artifacts.choose_artifact(folder)[0].name == "model.onnx"
    manifest["model.onnx"]["parity"]["top1_agreement"] = 0.5  # unfaithful: never chosen, however fast
    manifest["model.onnx"]["parity"]["accuracy"] = 0.0
    (folder / "artifacts.json").write_text(json.dumps(manifest))
    assert artifacts.choose_artifact(folder)[0].name == "model.keras"


def test_predict_on_the_onnx_file_answers_like_keras_without_tensorflow(onnx_export, tmp_path):
    root, run, out = onnx_export
    rows = {}
    for name, model in (("keras", str(run / "model.keras")), ("onnx", str(out / "model.onnx"))):
        target = tmp_path / f"{name}.jsonl"
        code = ("import sys; from dlpipe.pipelines.cli import main\n"
                "try: main(sys.argv[1:], standalone_mode=False)\n"
                "finally: print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')),"
                " file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", code, "predict", model, str(root / "blue"), str(root / "red"),
                               "--out", str(target)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        if name == "onnx":
            assert "HEAVY []" in done.stderr, done.stderr[-2000:]
        rows[name] = {row["input"]: row for row in map(json.loads, target.read_text().splitlines())}
    assert rows["onnx"].keys() == rows["keras"].keys() and len(rows["onnx"]) == 48
    for key, row in rows["keras"].items():
        assert rows["onnx"][key]["label"] == row["label"]
        assert abs(rows["onnx"][key]["score"] - row["score"]) < 1e-3


def test_the_onnx_file_alone_carries_labels_and_preprocessing(onnx_export, tmp_path):
    _, _, out = onnx_export
    alone = tmp_path / "model.onnx"
    alone.write_bytes((out / "model.onnx").read_bytes())
    side = artifacts.read_side_files(alone)
    assert side.task == "image" and side.class_names == ["blue", "red"]
    assert side.preprocessing["image_size"] == 32


def test_evaluate_runs_the_onnx_artifact(onnx_export, tmp_path):
    root, _, out = onnx_export
    result = CliRunner().invoke(main, ["evaluate", str(out), "--artifact", "onnx", "--data", str(root),
                                       "--out", str(tmp_path / "metrics.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] >= 0.8


def test_a_task_without_an_onnx_graph_gets_a_one_line_error():
    assert support("image")["onnx"] is None and support("segment")["onnx"] is None
    assert "no ONNX exporter for the detector" in support("detect")["onnx"]
    with pytest.raises(DlpipeError, match="onnx is not available for detect models: no ONNX exporter") as raised:
        export(None, "onnx", "/tmp", ExportRequest(artifacts.Bundle("detect", ["a"], None)))
    assert "\n" not in str(raised.value)


def test_a_graph_tf2onnx_cannot_convert_is_one_error_naming_the_format(tmp_path):
    import tensorflow as tf

    from dlpipe.models.export.onnx import write_onnx

    bundle = artifacts.Bundle("image", ["a"], get_task("image").preprocessing_from_dict({}))
    spec = tf.TensorSpec([None], tf.string, name="text")  # a string op tf2onnx has no mapping for
    with pytest.raises(DlpipeError, match="tf2onnx cannot convert this image model .no ONNX mapping for St") as raised:
        write_onnx(lambda text: {"probabilities": tf.strings.to_number(tf.strings.regex_replace(text, "a", "1"))},
                   [spec], tmp_path / "model.onnx", bundle)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["gru-1", "bilstm-1", "transformer"])
def test_text_onnx_takes_the_tflite_ids_and_matches_keras(name, tmp_path):
    import tensorflow as tf

    from test_text_tflite import CLASSES, PREP, TEXTS, TRAIN, _build
    from dlpipe.models.text_classifiers import make_vectorizer

    model = _build(name, make_vectorizer(TRAIN, PREP.max_tokens, PREP.sequence_length, PREP.standardize))
    bundle = artifacts.Bundle("text", CLASSES, PREP, get_task("text").side_files_for(model, PREP))
    path = export(model, "onnx", tmp_path, ExportRequest(bundle, sample=TEXTS))
    runtime = load_runtime(path)
    assert isinstance(runtime, OnnxRuntime) and runtime.class_names == CLASSES
    expected = model.predict(tf.constant(TEXTS), verbose=0)
    np.testing.assert_allclose(runtime.predict(TEXTS), expected, rtol=0, atol=1e-4)
    assert artifacts.read_record(path)["parity"]["top1_agreement"] == 1.0


def test_serve_answers_like_predict_on_the_onnx_file(onnx_export, tmp_path):
    import base64

    from fastapi.testclient import TestClient

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import create_app

    root, run, out = onnx_export
    photos = sorted((root / "blue").iterdir())[:4] + sorted((root / "red").iterdir())[:4]
    rows = tmp_path / "keras.jsonl"
    predicted = CliRunner().invoke(main, ["predict", str(run / "model.keras"), *map(str, photos), "--out", str(rows)],
                                   catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    keras_labels = {row["input"]: row["label"] for row in map(json.loads, rows.read_text().splitlines())}
    repository = ModelRepository(out / "model.onnx")
    served = repository.models()[0]
    assert served.runtime.format == "onnx"
    with TestClient(create_app(repository)) as client:
        instances = [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in photos]
        response = client.post(f"/v1/models/{served.name}:predict", json={"instances": instances})
        assert response.status_code == 200, response.text
        labels = [row["label"] for row in response.json()["predictions"]]
    assert labels == [keras_labels[str(p)] for p in photos]


def test_segmentation_and_multilabel_onnx_match_keras(tmp_path):
    import keras

    from test_multilabel_export import NAMES, THRESHOLDS, colour_model
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models.segmentation import build_unet
    from dlpipe.models.tasks.multilabel.layers import fold_thresholds
    from dlpipe.models.tasks.segment.task import SegmentPreprocessing

    keras.utils.set_random_seed(0)
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    unet, _ = build_unet("small", 3, 32, weights=None, decoder_filters=(16, 8, 8, 8, 8))
    multilabel = fold_thresholds(colour_model(), THRESHOLDS)
    cases = [("segment", unet, ["background", "a", "b"], SegmentPreprocessing(image_size=32), pixels),
             ("multilabel", multilabel, NAMES, ImagePreprocessing(image_size=16, resize="stretch"), pixels[:, :16, :16])]
    for task, model, names, prep, batch in cases:
        path = export(model, "onnx", tmp_path / task, ExportRequest(artifacts.Bundle(task, names, prep), sample=batch))
        runtime = load_runtime(path)
        assert isinstance(runtime, OnnxRuntime) and runtime.task.name == task
        np.testing.assert_allclose(runtime.predict(batch), model.predict(batch, verbose=0), rtol=0, atol=1e-4)
        assert artifacts.read_record(path)["parity"]["max_abs_diff"] < 1e-4


def test_minilm_onnx_takes_the_tflite_ids_mask_and_segment_ids_and_matches_keras(tmp_path):
    import keras

    from test_text_tflite import SMALL_MINILM, _wordpiece_vocab
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models.text_classifiers import minilm_classifier
    from dlpipe.models.text_tokenizers import make_text_encoder

    prep = TextPreprocessing(sequence_length=16, tokenizer="wordpiece", vocab_file=str(_wordpiece_vocab(tmp_path / "vocab.txt")))
    keras.utils.set_random_seed(0)
    model = minilm_classifier(2, prep.sequence_length, weights=None, config=SMALL_MINILM)
    texts = ["The movie was great!", "I loved it, loved it, loved it", "awful acting plots", "unknown zzz words", ""]
    bundle = artifacts.Bundle("text", ["negative", "positive"], prep, get_task("text").side_files_for(model, prep))
    path = export(model, "onnx", tmp_path / "onnx", ExportRequest(bundle))
    assert (path.parent / "vocab.txt").is_file()
    runtime = load_runtime(path)
    assert [detail["name"] for detail in runtime._inputs] == ["ids", "mask", "segment_ids"]
    expected = model.predict(make_text_encoder(prep, tmp_path / "vocab.txt")(texts), verbose=0)
    assert np.ptp(expected[:, 1]) > 1e-3  # the texts get different answers: parity can fail
    np.testing.assert_allclose(runtime.predict(texts), expected, rtol=0, atol=1e-4)


def test_a_file_that_is_not_onnx_gets_a_one_line_error_naming_it(onnx_export, tmp_path):
    _, _, out = onnx_export
    for name in ("labels.txt", "preprocessing.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    (tmp_path / "model.onnx").write_bytes((out / "model.onnx").read_bytes()[:200])  # truncated
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "model.onnx"), str(tmp_path / "labels.txt")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "model.onnx" in lines[0] and "not an ONNX model" in lines[0], result.output


def test_a_run_with_onnx_in_export_formats_writes_and_checks_it(tmp_path_factory):
    from conftest import TINY_SETS, tiny_image_run

    _, out, _ = tiny_image_run(tmp_path_factory, [*TINY_SETS, "train.epochs=2", "export.formats=[keras,onnx]"])
    record = artifacts.read_record(out / "model.onnx")
    assert record["format"] == "onnx" and record["parity"]["max_abs_diff"] < 1e-4
    assert record["parity"]["top1_agreement"] == 1.0
