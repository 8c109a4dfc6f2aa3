"""`dlpipe predict` on a trained run: top-k labels per file, errors per file, JSONL output."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import TINY_TEXT_SETS

from dlpipe.pipelines.cli import main
from dlpipe.models.runtimes import load_runtime


def test_predict_prints_top_labels_and_writes_jsonl(trained_run, tmp_path):
    root, out = trained_run
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    result = CliRunner().invoke(main, ["predict", str(out), str(root / "blue"), str(tmp_path / "broken.png"),
                                       "--top-k", "2", "--out", str(tmp_path / "preds.jsonl")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert len(rows) == 25
    good = [row for row in rows if "error" not in row]
    assert sum(row["label"] == "blue" for row in good) >= 20
    assert all(len(row["top"]) == 2 for row in good)
    assert rows[-1]["input"].endswith("broken.png") and "cannot be decoded" in rows[-1]["error"]
    assert "24 classified, 1 failed, 0 already done" in result.output


def test_predictor_accepts_the_model_file_and_rejects_junk(trained_run, tmp_path):
    _, out = trained_run
    runtime = load_runtime(out / "model.keras")
    assert runtime.class_names == ["blue", "red"] and runtime.format == "keras"
    result = CliRunner().invoke(main, ["predict", "--model", str(tmp_path / "nothing"), str(tmp_path)])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "efficientnet-lite0-imagenet" in result.output
    # a classifier writes rows, not files per input: --out must be a file (folders are for segmentation models)
    result = CliRunner().invoke(main, ["predict", str(out), str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output and ".jsonl" in result.output


def test_text_model_predicts_lines_of_text_files(sentences_file, tmp_path):
    from dlpipe.pipelines import api

    out = tmp_path / "run"
    sets = [*TINY_TEXT_SETS, "export.formats=[keras]"]
    api.run("sentiment", data=str(sentences_file), out=out, sets=sets, echo=lambda _: None)
    texts = tmp_path / "texts.jsonl"
    texts.write_bytes(b'{"text": "Really great and wonderful service."}\n{"txt": "wrong key"}\n'
                      b'{"text": "The worst, terrible food."}\n')
    result = CliRunner().invoke(main, ["predict", str(out), str(texts), "--out", str(tmp_path / "rows.jsonl")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [row.get("label") for row in rows] == ["1", None, "0"]
    assert rows[1]["input"].endswith("texts.jsonl:2") and '"text"' in rows[1]["error"]
    assert "2 classified, 1 failed" in result.output
    # the deployed files predict the same labels: a .tflite (tokenised with its shipped vocabulary) and a SavedModel
    from dlpipe.pipelines.exporting import export_run

    for artifact in (export_run(out, "tflite"), export_run(out, "savedmodel")):
        deployed = CliRunner().invoke(main, ["predict", str(artifact), str(texts), "--out", str(tmp_path / f"{artifact.name}.jsonl")],
                                      catch_exceptions=False)
        assert deployed.exit_code == 0, deployed.output
        again = [json.loads(line) for line in (tmp_path / f"{artifact.name}.jsonl").read_text().splitlines()]
        assert [row.get("label") for row in again] == ["1", None, "0"]
        for first, second in zip(rows, again):
            if "score" in first:
                assert abs(first["score"] - second["score"]) < 1e-4
