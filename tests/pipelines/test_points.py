"""The points task: `dlpipe run points` learns a CSV of 2-D points, its artifacts classify points (predict, evaluate,
serve), bad CSVs get one-line errors, and `dlpipe playground` names the set-up when TensorFlow.js is missing (no browser needed)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dlpipe.errors import DataError
from dlpipe.pipelines.cli import main
from helpers_points import write_circle


def test_a_run_learns_the_circle_and_its_artifacts_classify_points(tmp_path):
    from dlpipe.pipelines import api

    write_circle(tmp_path / "circle.csv")
    out = tmp_path / "run"
    api.run("points", data=str(tmp_path / "circle.csv"), out=out, echo=lambda _: None,
            sets=["model.features=[x2,y2]", "model.layers=[]", "train.epochs=30", "train.learning_rate=0.01",
                  "export.formats=[keras,tflite]"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_points"] == metrics["test_points"] == 80
    assert metrics["test_accuracy"] >= 0.95 and metrics["test_loss"] < 0.3  # chance: 0.5 and ln 2 = 0.69
    records = json.loads((out / "artifacts.json").read_text())
    tflite = next(record for record in records.values() if record["format"] == "tflite")
    assert tflite["parity"]["count"] == 80 and tflite["parity"]["top1_agreement"] == 1.0  # the features convert too
    card = (out / "MODEL_CARD.md").read_text()
    assert f"Test loss {metrics['test_loss']:.3f}" in card and "features x2, y2, hidden layers none" in card
    answered = CliRunner().invoke(main, ["predict", str(out), "0,0.5", "4,-2", "x,1"])
    rows = {line.split(": ")[0]: line.split(": ")[1] for line in answered.output.splitlines() if ": " in line}
    assert rows["0,0.5"].startswith("in ") and rows["4,-2"].startswith("out ") and rows["x,1"].startswith("error")
    scored = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(tmp_path / "circle.csv")])
    assert scored.exit_code == 0 and "on 80 inputs" in scored.output  # the split column: test rows only
    served = _served(out, tmp_path / "models")
    assert [p["label"] for p in served(json={"instances": [[0, 0.5], [4, -2]]}).json()["predictions"]] == ["in", "out"]
    refused = served(json={"instances": ["oops"]})
    assert refused.status_code == 400 and "send [x, y] numbers" in refused.json()["error"]


def _served(run, root):
    """POST to `dlpipe serve`'s app holding the run's Keras model as ROOT/circle/1."""
    import shutil

    from fastapi.testclient import TestClient

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app

    (root / "circle" / "1").mkdir(parents=True)
    for name in ("model.keras", "labels.txt", "preprocessing.json"):
        shutil.copy(run / name, root / "circle" / "1" / name)
    client = TestClient(create_app(ModelRepository(root), ServerSettings()))
    return lambda **body: client.post("/v1/models/circle:predict", **body)


@pytest.mark.parametrize("text, where, reason", [
    ("x,label\n1,a\n", "points.csv", "needs columns x, y, label"),
    ("x,y,label\n1,2,a\n1,oops,b\n", "points.csv:3", "x and y must be numbers"),
    ("x,y,label,split\n1,2,a,train\n1,3,b,valid\n", "points.csv:3", "split must be train or test"),
    ("x,y,label,split\n1,2,a,train\n1,3,a,test\n", "points.csv", "needs at least two labels"),
])
def test_a_bad_csv_is_named_with_the_fix(tmp_path, text, where, reason):
    from dlpipe.pipelines import api

    (tmp_path / "points.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=reason) as error:
        api.run("points", data=str(tmp_path / "points.csv"), out=tmp_path / "run", echo=lambda _: None)
    assert str(error.value).split(":")[0].endswith(where.split(":")[0]) and where in str(error.value)


def test_playground_without_tensorflow_js_names_the_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("DLPIPE_WEB_VENDOR", str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["playground", "--out", str(tmp_path / "page")])
    assert result.exit_code != 0
    assert "scripts/setup.sh" in result.output and "@tensorflow/tfjs" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
