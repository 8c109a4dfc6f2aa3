"""A new task is one module plus its registration: the CLI, the batch job and the server run it unchanged.

This module is that task ("numbers": comma-separated numbers in, classes
out), written the way a detection or tabular task would be; nothing in
dlpipe's CLI, batch job, server or runtime is edited for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.models.export import ExportRequest, export, register
from dlpipe.models.export.converters import write_keras
from dlpipe.models.tasks import TASKS, ClassificationTask, InputSet, PreparedBatch

register("numbers", "keras")(write_keras)


@dataclass(frozen=True)
class NumbersPreprocessing:
    size: int = 3

    def to_dict(self):
        return asdict(self)


class NumbersTask(ClassificationTask):
    """Lines of `size` comma-separated numbers."""

    name = "numbers"
    description = "vectors of numbers"
    exporters_module = __name__

    def preprocessing_from_dict(self, values):
        return NumbersPreprocessing(size=int(values["size"]))

    def collect_inputs(self, sources):
        inputs = InputSet()
        for source in sources:
            for number, line in enumerate(Path(source).read_text().splitlines(), start=1):
                try:
                    inputs.add(f"{source}:{number}", [float(x) for x in line.split(",")])
                except ValueError:
                    inputs.add(f"{source}:{number}", error="not numbers")
        return inputs

    def batches(self, inputs, prep, batch_size):
        readable = [key for key in inputs.ids if key not in inputs.errors]
        for start in range(0, len(readable), batch_size):
            chunk = readable[start:start + batch_size]
            yield PreparedBatch(chunk, self.stack([inputs.payloads[key] for key in chunk]), {})

    def prepare(self, raw, prep):
        if not isinstance(raw, list) or len(raw) != prep.size:
            raise DataError("instance", f"send a list of {prep.size} numbers")
        return raw

    def stack(self, items):
        return np.asarray(items, np.float32)

    def labelled_data(self, path):
        raise DataError(str(path), "not needed here")

    def keras_feed(self, prep, side):
        return lambda batch: np.asarray(batch, np.float32)

    def savedmodel_predict(self, loaded, prep, side):
        raise DataError(str(side.folder), "no SavedModel for numbers")

    def tflite_feed(self, prep, side):
        return lambda batch, details: [np.asarray(batch, np.float32)]


@pytest.fixture
def numbers_model(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS._entries, "numbers", NumbersTask())
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    # class "big" when the first number is large, "small" otherwise
    model.layers[-1].set_weights([np.array([[-5.0, 5.0], [0, 0], [0, 0]], np.float32), np.zeros(2, np.float32)])
    bundle = artifacts.Bundle("numbers", ["small", "big"], NumbersPreprocessing())
    export(model, "keras", tmp_path / "run", ExportRequest(bundle, sample=np.eye(3, dtype=np.float32)))
    data = tmp_path / "vectors.txt"
    data.write_text("3,0,0\n-3,0,0\nnot,a,vector\n2,1,1\n")
    return tmp_path / "run", data


def test_predict_and_serve_run_a_task_they_have_never_heard_of(numbers_model, tmp_path):
    from dlpipe.pipelines.cli import main
    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import create_app

    run, data = numbers_model
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["predict", str(run), str(data), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row.get("label") for row in rows] == ["big", "small", None, "big"]  # in input order
    assert rows[2] == {"input": f"{data}:3", "error": "not numbers"}
    with TestClient(create_app(ModelRepository(run))) as client:
        answer = client.post("/v1/models/run:predict", json={"instances": [[3, 0, 0], [-3, 0, 0]]})
        assert answer.status_code == 200, answer.text
        assert [p["label"] for p in answer.json()["predictions"]] == ["big", "small"]
        bad = client.post("/v1/models/run:predict", json={"instances": [[1, 2]]})
        assert bad.status_code == 400 and "list of 3 numbers" in bad.json()["error"]
    assert artifacts.read_record(run / "model.keras")["parity"]["top1_agreement"] == 1.0
