"""`dlpipe predict`, `evaluate` and `serve` on a .tflite import neither TensorFlow nor Keras, and answer as the
TensorFlow path does (the training graph's decode, Keras' TextVectorization) on the same file.

Each command runs in a fresh Python (this test process has TensorFlow loaded) that reports, as it exits, which
TensorFlow/Keras modules it imported.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import HYMENOPTERA, SENTENCES, write_color_images
from dlpipe.errors import DataError

# runs the CLI, then names every TensorFlow/Keras module the process imported (on stderr, however it ended)
CHECKED_CLI = """
import json, sys
from dlpipe.pipelines.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except KeyboardInterrupt:
    pass
finally:
    heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
    print("HEAVY-MODULES " + json.dumps(heavy), file=sys.stderr, flush=True)
"""


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", CHECKED_CLI, *args]


def heavy_modules(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.startswith("HEAVY-MODULES ")]
    assert lines, stderr[-2000:]
    return json.loads(lines[-1].removeprefix("HEAVY-MODULES "))


def run_cli(*args: str) -> str:
    done = subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert heavy_modules(done.stderr) == []
    return done.stdout


def read_rows(path: Path) -> dict[str, dict]:
    return {row["input"]: row for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def assert_same_answers(ours: dict[str, dict], reference: list[dict]) -> None:
    assert set(ours) == {row["input"] for row in reference}
    for row in reference:
        mine = ours[row["input"]]
        assert mine["label"] == row["label"]
        scores = {item["label"]: item["score"] for item in row["top"]}
        assert all(abs(item["score"] - scores[item["label"]]) < 1e-4 for item in mine["top"])


@pytest.fixture(scope="module")
def photos() -> list[str]:
    return [str(p) for p in sorted((HYMENOPTERA / "ants").glob("*.jpg"))[:4]] + [str(p) for p in HYMENOPTERA.rglob("*.gif")]


def graph_rows(tflite: Path, inputs: list[str], task_name: str) -> list[dict]:
    """The rows of the .tflite fed by the TensorFlow path (the registry's task decodes with the training graph)."""
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import get_task
    from dlpipe.serving.batch_job import result_rows

    runtime = load_runtime(tflite)
    runtime.task = get_task(task_name)
    assert getattr(runtime.task, "decoder", "tensorflow") == "tensorflow"
    return [row for rows in result_rows(runtime, runtime.task.collect_inputs(inputs), top_k=5) for row in rows]


def test_image_predict_and_evaluate_need_no_tensorflow(tiny_tflite: Path, photos: list[str], tmp_path: Path) -> None:
    tflite = tiny_tflite / "model.tflite"
    run_cli("predict", str(tflite), *photos, "--out", str(tmp_path / "rows.jsonl"))
    assert_same_answers(read_rows(tmp_path / "rows.jsonl"), graph_rows(tflite, photos, "image"))

    labelled = tmp_path / "colors"
    write_color_images(labelled / "blue", "blue", 6, seed=4)
    write_color_images(labelled / "red", "red", 6, seed=5, fmt="PNG")
    run_cli("evaluate", str(tflite), "--data", str(labelled), "--out", str(tmp_path / "metrics.json"))
    report = json.loads((tmp_path / "metrics.json").read_text())
    from dlpipe.pipelines.evaluation import evaluate_artifact

    assert report["count"] == 12 and report["accuracy"] == evaluate_artifact(tflite, labelled)["accuracy"]


@pytest.fixture(scope="module")
def words_tflite(tmp_path_factory) -> Path:
    """A words text model's .tflite (token ids in, built here in seconds) with its vocabulary.txt, as an export."""
    import keras
    import tensorflow as tf

    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models import artifacts

    folder = tmp_path_factory.mktemp("words-tflite")
    prep = TextPreprocessing(sequence_length=12, tokenizer="words")
    layer = keras.layers.TextVectorization(max_tokens=500, standardize=prep.standardize, output_sequence_length=12)
    layer.adapt(shared_sentences()[:400])
    vocabulary = folder / "vocabulary.txt"
    vocabulary.write_text("".join(f"{token}\n" for token in layer.get_vocabulary()), encoding="utf-8")
    keras.utils.set_random_seed(0)
    ids = keras.Input((12,), dtype="int32", name="token_ids")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(500, 8)(ids))
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(hidden))
    (folder / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    artifacts.write_side_files(folder, artifacts.Bundle("text", ["negative", "positive"], prep))
    return folder


def shared_sentences() -> list[str]:
    lines = (SENTENCES / "yelp_labelled.txt").read_text(encoding="utf-8").splitlines()
    return [line.rsplit("\t", 1)[0] for line in lines if line.strip()]


def test_an_image_tflite_job_runs_one_batch_at_a_time_on_the_loaded_interpreter(tiny_tflite: Path,
                                                                                  photos: list[str]) -> None:
    """The NumPy decoder's threads decode ahead, so the model takes one batch at a time on every core: no replica
    interpreters (each would pack the weights again on its first batch); the graph path and text keep two."""
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import get_task
    from dlpipe.serving.batch_job import result_rows

    runtime = load_runtime(tiny_tflite / "model.tflite")
    inputs = runtime.task.collect_inputs(photos)
    one = [row for rows in result_rows(runtime, inputs, top_k=2, batch_size=2) for row in rows]
    assert runtime.task.batches_in_flight() == 1 and "_pools" not in runtime.__dict__
    two = [row for rows in result_rows(runtime, inputs, top_k=2, batch_size=2, in_flight=2) for row in rows]
    assert len(runtime.__dict__["_pools"][2].replicas) == 2
    assert [row["input"] for row in one] == [row["input"] for row in two] == inputs.ids
    assert_same_answers({row["input"]: row for row in one}, two)
    assert get_task("image").batches_in_flight() == 2 and get_task("text").batches_in_flight() == 2


def test_text_predict_needs_no_tensorflow_and_matches_keras_ids(words_tflite: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(shared_sentences()[400:440] + ["ÉCOLE it's GREAT\u00a0food!!", "[UNK] unknownword"]) + "\n",
                     encoding="utf-8")
    tflite = words_tflite / "model.tflite"
    run_cli("predict", str(tflite), str(texts), "--out", str(tmp_path / "rows.jsonl"))
    ours = read_rows(tmp_path / "rows.jsonl")
    # the TensorFlow path: Keras' own TextVectorization makes the ids, LiteRT runs the same file
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from dlpipe.data.text import read_vocabulary

    layer = keras.layers.TextVectorization(standardize="lower_and_strip_punctuation", output_sequence_length=12,
                                           vocabulary=read_vocabulary(words_tflite / "vocabulary.txt")[2:])
    lines = texts.read_text(encoding="utf-8").splitlines()
    interpreter = Interpreter(model_path=str(tflite))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [len(lines), 12])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], layer(tf.constant(lines)).numpy().astype(np.int32))
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    for number, probabilities in enumerate(expected, start=1):
        row = ours[f"{texts}:{number}"]
        assert row["label"] == ["negative", "positive"][int(np.argmax(probabilities))]
        assert abs(row["score"] - float(probabilities.max())) < 1e-5


def test_serve_answers_without_tensorflow(tiny_tflite: Path, photos: list[str]) -> None:
    import base64

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(cli_command("serve", str(tiny_tflite / "model.tflite"), "--port", str(port),
                                          "--watch-seconds", "0"), stderr=subprocess.PIPE, text=True)
    try:
        body = json.dumps({"instances": [{"b64": base64.b64encode(Path(photos[0]).read_bytes()).decode()}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/model:predict", body,
                                         {"Content-Type": "application/json"})
        deadline, answer = time.monotonic() + 60, None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
            except OSError:
                time.sleep(0.2)
        assert answer is not None, "the server did not answer"
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert heavy_modules(stderr) == []
    reference = graph_rows(tiny_tflite / "model.tflite", photos[:1], "image")[0]
    assert answer["predictions"][0]["label"] == reference["label"]
    assert abs(answer["predictions"][0]["score"] - reference["score"]) < 1e-4


@pytest.mark.parametrize("task_name", ["image", "multilabel", "detect", "segment"])
def test_every_image_task_prepares_the_graphs_input_without_tensorflow(task_name: str, photos: list[str]) -> None:
    """What a served .tflite of each image task is fed (`without_tensorflow().prepare`) is the graph path's input."""
    from dlpipe.models.tasks import get_task

    task = get_task(task_name)
    prep = task.preprocessing_from_dict({"image_size": 64})
    light = task.without_tensorflow()
    assert getattr(light, "decoder", None) == "numpy" or getattr(light, "_images").decoder == "numpy"
    for photo in photos:
        contents = Path(photo).read_bytes()
        ours, graph = light.prepare(contents, prep), task.prepare(contents, prep)
        if isinstance(graph, dict):  # detection: the stretched photo and its size
            assert np.array_equal(ours["sizes"], graph["sizes"])
            ours, graph = ours["pixels"], graph["pixels"]
        assert ours.shape == graph.shape and np.abs(ours - graph).max() <= 1.0
    with pytest.raises(DataError, match="cannot be decoded"):
        light.prepare(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10, prep)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory) -> Path:
    """A detection .tflite (untrained: 64 px in, 4 rows of x1 y1 x2 y2 score class out) with its side files."""
    import keras
    import tensorflow as tf

    from dlpipe.models import artifacts
    from dlpipe.models.tasks.detect.task import DetectPreprocessing

    folder = tmp_path_factory.mktemp("tiny-detector")
    keras.utils.set_random_seed(1)
    pixels = keras.Input((64, 64, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 5, strides=4)(pixels / 255.0))
    rows = keras.layers.Reshape((4, 5))(keras.layers.Dense(20, activation="sigmoid")(features))
    classes = keras.layers.Lambda(lambda r: tf.zeros_like(r[..., :1]))(rows)
    model = keras.Model(pixels, keras.layers.Concatenate()([rows, classes]))
    (folder / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    artifacts.write_side_files(folder, artifacts.Bundle("detect", ["thing"], DetectPreprocessing(image_size=64)))
    return folder


def test_detection_predict_needs_no_tensorflow(tiny_detector: Path, photos: list[str], tmp_path: Path) -> None:
    tflite = tiny_detector / "model.tflite"
    run_cli("predict", str(tflite), *photos, "--out", str(tmp_path / "rows.jsonl"), "--min-score", "0.1")
    ours = read_rows(tmp_path / "rows.jsonl")
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks import get_task
    from dlpipe.serving.batch_job import result_rows

    runtime = load_runtime(tflite)
    runtime.task = get_task("detect").with_options(min_score=0.1)  # the graph's decode
    reference = [row for rows in result_rows(runtime, runtime.task.collect_inputs(photos)) for row in rows]
    assert sum(row["count"] for row in reference) > 0
    for row in reference:
        mine = ours[row["input"]]
        assert mine["count"] == row["count"]
        for box, expected in zip(mine["top"], row["top"]):  # boxes in the photo's pixels
            assert abs(box["score"] - expected["score"]) < 1e-4
            assert np.abs(np.subtract(box["box"], expected["box"])).max() <= 0.2
