"""`dlpipe check-device`: a run's .tflite files in the real MediaPipe ImageClassifier on raw photos, against the
run's Keras model, with the photos they disagree on; a missing MediaPipe environment is one line with the fix.

The tiny run centre-crops (`preprocess.resize=crop`), MediaPipe stretches the whole photo: a wide photo whose
centre is blue and whose sides are red is blue to the Keras model and red in MediaPipe, so the command must list
it (red sides, not a red centre: the small CNN max-pools, so a red band in the middle would reach every cell of the
stretched photo and could turn both answers red). Every figure is checked against this test's own runs of both (`dlpipe predict` on model.keras, and
tests/edge/mediapipe_runner.py in .venv-mediapipe).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_SETS, write_color_images
from dlpipe.pipelines.cli import main
from edge.mediapipe_env import require_mediapipe, run_mediapipe

TRICK = "wide_blue_centre.png"


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder with model.keras, model.tflite and model_int8.tflite, a labelled folder of 13 photos); the run's
    export stage checked its files in MediaPipe (export.device_check): artifacts.json as it left it is saved aside
    in export_artifacts.json."""
    from dlpipe.pipelines import api

    require_mediapipe()
    root = tmp_path_factory.mktemp("device-check")
    write_color_images(root / "train" / "blue", "blue", 24, seed=2)
    write_color_images(root / "train" / "red", "red", 24, seed=1)
    api.run("image-classify", data=str(root / "train"), out=root / "run", echo=lambda _: None,
            sets=[*TINY_SETS, "export.formats=[keras,tflite,tflite-int8]", "train.epochs=12",
                  "train.learning_rate=0.003", "preprocess.resize=crop", "preprocess.sampling=antialias",
                  "export.device_check=true",
                  "augment.enabled=false"])
    (root / "export_artifacts.json").write_text((root / "run" / "artifacts.json").read_text())
    photos = root / "photos"
    write_color_images(photos / "blue", "blue", 6, seed=12)
    write_color_images(photos / "red", "red", 6, seed=11)
    pixels = np.random.default_rng(5).integers(0, 60, size=(40, 160, 3))
    pixels[:, :, 0] += 160  # red, but for a blue band in the middle that the centre crop keeps
    pixels[:, 60:100, 0] -= 160
    pixels[:, 60:100, 2] += 160
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(photos / "red" / TRICK)
    return root / "run", photos


def top1(rows_file: Path) -> dict[str, str]:
    return {Path(row["input"]).name: row["label"] for row in map(json.loads, rows_file.read_text().splitlines())}


def test_check_device_reports_agreement_accuracy_and_the_photos_mediapipe_answers_differently(crop_run, tmp_path):
    run, photos = crop_run
    out = tmp_path / "device.json"
    result = CliRunner().invoke(main, ["check-device", str(run), "--data", str(photos), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mediapipe" not in sys.modules  # MediaPipe ran in its own environment, never in dlpipe's
    report = json.loads(out.read_text())
    chosen = sorted(photos.rglob("*.*"))
    truth = {p.name: p.parent.name for p in chosen}
    predicted = CliRunner().invoke(main, ["predict", str(run / "model.keras"), str(photos), "--top-k", "1",
                                          "--out", str(tmp_path / "keras.jsonl")], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    keras = top1(tmp_path / "keras.jsonl")
    assert report["labelled"] and set(report["files"]) == {"model.tflite", "model_int8.tflite"}
    for name, figures in report["files"].items():
        answer = run_mediapipe({"image": [{"model": str(run / name), "images": [str(p) for p in chosen]}]})["image"][0]
        theirs = {p.name: max(c, key=lambda c: c["score"])["category_name"] for p, c in zip(chosen, answer)}
        differ = {photo for photo in theirs if theirs[photo] != keras[photo]}
        assert TRICK in differ and keras[TRICK] == "blue" and theirs[TRICK] == "red", (keras[TRICK], theirs[TRICK])  # crop vs stretch
        assert figures["inputs"] == figures["answered"] == 13 and not figures["unanswered"]
        assert figures["top1_agreement"] == pytest.approx(1 - len(differ) / 13)
        assert {Path(row["input"]).name: (row["keras"], row["mediapipe"], row["label"])
                for row in figures["disagreements"]} == {p: (keras[p], theirs[p], truth[p]) for p in differ}
        assert figures["keras_accuracy"] == pytest.approx(np.mean([keras[p] == truth[p] for p in truth]))
        assert figures["mediapipe_accuracy"] == pytest.approx(np.mean([theirs[p] == truth[p] for p in truth]))
        assert f"{name}: MediaPipe" in result.output and f"{TRICK}: Keras blue" in result.output
        record = json.loads((run / "artifacts.json").read_text())[name]
        assert record["parity"]["top1_agreement"] is not None  # the export-time Keras parity is kept beside it
        assert record["mediapipe"]["top1_agreement"] == figures["top1_agreement"]
        assert record["mediapipe"]["disagreements"] == len(differ) and record["mediapipe"]["report"] == str(out)
    from dlpipe.pipelines.report_page import write_report_page

    page = Path(write_report_page(run)).read_text()  # the run's page shows each file's MediaPipe agreement
    assert f"<td>{report['files']['model.tflite']['top1_agreement']:.3f} of 13 ({photos})</td>" in page


def test_the_export_stage_records_mediapipe_on_the_validation_photos_beside_the_parity(crop_run):
    run, _ = crop_run
    records = json.loads((run.parent / "export_artifacts.json").read_text())
    validation = json.loads((run / "metrics.json").read_text())["count"]
    for name in ("model.tflite", "model_int8.tflite"):
        parity, device = records[name]["parity"], records[name]["mediapipe"]
        assert parity["top1_agreement"] is not None and device["data"] == "the validation inputs"
        assert device["inputs"] == device["answered"] == validation and device["unanswered"] == 0
        assert device["top1_agreement"] == pytest.approx(1 - device["disagreements"] / validation)
        # the plain colour photos are square-ish and one colour: crop and stretch see the same answer
        assert device["top1_agreement"] == 1.0 and device["keras_accuracy"] == device["mediapipe_accuracy"]
    assert "mediapipe" not in records["model.keras"]


def test_a_photo_mediapipe_cannot_classify_is_listed_and_the_rest_still_answered(crop_run, tmp_path):
    run, photos = crop_run
    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(next((photos / "red").iterdir()), odd / "a_red.jpg")
    pixels = np.full((40, 40), 90, np.uint8)
    Image.fromarray(pixels).save(odd / "b_gray.png")  # one channel: dlpipe makes it RGB, MediaPipe 1.2.3 refuses it
    shutil.copy(next((photos / "blue").iterdir()), odd / "c_blue.jpg")
    result = CliRunner().invoke(main, ["check-device", str(run / "model.tflite"), "--data", str(odd),
                                       "--out", str(tmp_path / "d.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "d.json").read_text())["files"]["model.tflite"]
    assert figures["inputs"] == 3 and figures["answered"] == 2 and figures["top1_agreement"] == 1.0
    assert [Path(row["input"]).name for row in figures["unanswered"]] == ["b_gray.png"]
    assert "does not fit the model's input" in figures["unanswered"][0]["error"]
    assert "1 it could not classify (first: " in result.output


def test_export_device_check_needs_the_keras_reference():
    result = CliRunner().invoke(main, ["config", "image-classify", "--set", "export.device_check=true",
                                       "--set", "export.formats=[tflite]"])
    assert result.exit_code == 2 and "needs keras among export.formats" in result.output, result.output


def test_check_device_fails_below_min_agreement(crop_run, tmp_path):
    run, photos = crop_run
    result = CliRunner().invoke(main, ["check-device", str(run / "model.tflite"), "--data", str(photos),
                                       "--out", str(tmp_path / "d.json"), "--min-agreement", "1"])
    assert result.exit_code == 1 and "below --min-agreement 1.0: model.tflite" in result.output


def test_a_folder_without_class_sub_folders_gets_agreement_only(crop_run, tmp_path):
    run, photos = crop_run
    result = CliRunner().invoke(main, ["check-device", str(run / "model.tflite"), "--data", str(photos / "red"),
                                       "--out", str(tmp_path / "d.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    figures = report["files"]["model.tflite"]
    assert not report["labelled"] and figures["inputs"] == 7 and "keras_accuracy" not in figures
    assert TRICK in {Path(row["input"]).name for row in figures["disagreements"]} and "label" not in str(figures)


@pytest.mark.long
def test_check_device_web_runs_each_file_in_mediapipe_web_in_headless_chromium(crop_run, tmp_path):
    from assets import require
    from dlpipe.models.export.web import vendor_root

    require(bool(shutil.which("chromium") or shutil.which("chromium-browser")), "chromium on PATH",
            "Debian: apt-get install chromium; scripts/setup.sh does as root")
    require(vendor_root().is_dir(), f"MediaPipe Tasks web files ({vendor_root()})",
            "scripts/setup.sh runs npm install --prefix .web-vendor @mediapipe/tasks-vision @mediapipe/tasks-text")
    run, photos = crop_run
    out = tmp_path / "d.json"
    result = CliRunner().invoke(main, ["check-device", str(run), "--data", str(photos), "--out", str(out), "--web"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["web"]) == {"model.tflite", "model_int8.tflite"}
    for name, figures in report["web"].items():
        python = report["files"][name]
        assert figures["inputs"] == figures["answered"] == 13
        rows = {Path(row["input"]).name: row for row in figures["disagreements"]}
        # dlpipe's page draws the centre crop the model was trained on (preprocessing.json) before MediaPipe
        # stretches it, so the browser answers the trick photo as Keras does, where MediaPipe Python is given the
        # whole photo and does not
        assert TRICK not in rows and TRICK in {Path(row["input"]).name for row in python["disagreements"]}
        assert figures["top1_agreement"] == pytest.approx(1 - len(rows) / 13)
        assert abs(figures["mediapipe_accuracy"] - python["mediapipe_accuracy"]) <= 1 / 13 + 1e-9
        record = json.loads((run / "artifacts.json").read_text())[name]
        assert record["mediapipe_web"]["top1_agreement"] == figures["top1_agreement"] and "mediapipe" in record
    assert "MediaPipe Web in Chromium agrees with the Keras model" in result.output


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny GRU sentiment run with model.tflite and model_dynamic.tflite, a labelled file of unseen sentences)."""
    from conftest import TINY_TEXT_SETS, write_sentences
    from dlpipe.pipelines import api

    require_mediapipe()
    root = tmp_path_factory.mktemp("device-check-text")
    api.run("sentiment", data=str(write_sentences(root / "train.txt", 160, seed=3)), out=root / "run",
            sets=[*TINY_TEXT_SETS, "preprocess.tokenizer=words", "export.formats=[keras,tflite,tflite-dynamic]"],
            echo=lambda _: None)
    return root / "run", write_sentences(root / "unseen.txt", 40, seed=9)


def test_check_device_runs_a_text_run_in_the_text_classifier_on_raw_sentences(text_run, tmp_path):
    run, sentences = text_run
    result = CliRunner().invoke(main, ["check-device", str(run), "--data", str(sentences), "--out",
                                       str(tmp_path / "d.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    texts, labels = zip(*(line.rsplit("\t", 1) for line in sentences.read_text().splitlines()))
    listing = tmp_path / "texts.txt"
    listing.write_text("".join(f"{text}\n" for text in texts))
    predicted = CliRunner().invoke(main, ["predict", str(run / "model.keras"), str(listing), "--top-k", "1",
                                          "--out", str(tmp_path / "keras.jsonl")], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    keras = [row["label"] for row in map(json.loads, (tmp_path / "keras.jsonl").read_text().splitlines())]
    assert report["labelled"] and set(report["files"]) == {"model.tflite", "model_dynamic.tflite"}
    for name, figures in report["files"].items():
        answer = run_mediapipe({"text": [{"model": str(run / name), "texts": list(texts)}]})["text"][0]
        theirs = [max(c, key=lambda c: c["score"])["category_name"] for c in answer]
        assert figures["inputs"] == figures["answered"] == 40
        assert figures["top1_agreement"] == pytest.approx(np.mean([a == b for a, b in zip(keras, theirs)]))
        assert figures["keras_accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(keras, labels)]))
        assert figures["mediapipe_accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(theirs, labels)]))
        assert figures["keras_accuracy"] >= 0.8  # a model that learnt the words, so agreement means something
        assert json.loads((run / "artifacts.json").read_text())[name]["mediapipe"]["inputs"] == 40


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_missing_mediapipe_environment_is_one_line_with_the_command_that_creates_it(tiny_tflite, tmp_path, how,
                                                                                       monkeypatch):
    missing = tmp_path / "nowhere" / "bin" / "python"
    args = ["check-device", str(tiny_tflite / "model.tflite"), "--data", str(tmp_path)]
    if how == "option":
        args += ["--mediapipe-python", str(missing)]
    else:
        monkeypatch.setenv("DLPIPE_MEDIAPIPE_PYTHON", str(missing))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {missing}: no MediaPipe environment there")
    assert "python -m venv .venv-mediapipe && .venv-mediapipe/bin/pip install mediapipe==" in lines[0]
    assert "bash scripts/setup.sh" in lines[0]


def test_the_version_the_error_names_is_the_one_the_setup_installs():
    from dlpipe.pipelines.mediapipe_env import MEDIAPIPE_VERSION

    setup = (Path(__file__).resolve().parents[2] / "scripts" / "setup.sh").read_text()
    assert f"MEDIAPIPE_VERSION={MEDIAPIPE_VERSION}\n" in setup


def test_web_without_a_browser_is_one_line_before_any_work(tiny_tflite, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium to be found
    result = CliRunner().invoke(main, ["check-device", str(tiny_tflite / "model.tflite"), "--data", str(tmp_path),
                                       "--mediapipe-python", sys.executable, "--web"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["error: --web needs chromium on PATH; install it (Debian: apt-get "
                                                  "install chromium; scripts/setup.sh does as root), or leave out --web"]
