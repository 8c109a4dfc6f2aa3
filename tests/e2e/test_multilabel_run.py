"""`dlpipe run image-multilabel` end to end: a CSV of label sets in, a model that names every label it sees out.

Generated photos: grey, with a red square, a blue square, both or neither, so each photo's label set is known.
The run trains a small CNN (tiny, seconds), chooses each label's threshold, folds it into the model, exports
Keras, SavedModel and TFLite (with MediaPipe metadata holding threshold 0.5), and predicts sets of labels.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_SETS
from dlpipe.pipelines.cli import main
from helpers_card import assert_card_states_the_run
from PIL import Image

SETS = [*(s for s in TINY_SETS if not s.startswith("train.monitor=")), "train.monitor=val_auc", "train.epochs=12",
        "train.learning_rate=0.003", "augment.enabled=false", "export.formats=[keras,savedmodel,tflite]",
        "evaluate.bootstrap=200", "preprocess.sampling=antialias", "model.image_size=32"]


def scene(red: bool, blue: bool, seed: int, size: int = 40) -> np.ndarray:
    return scene_with_boxes(red, blue, seed, size)[0]


def scene_with_boxes(red: bool, blue: bool, seed: int, size: int = 40) -> tuple[np.ndarray, list[tuple[str, list[int]]]]:
    """A grey photo with a 14-px red and/or blue square, and each square's COCO box (label, [x, y, width, height])."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(128, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    boxes = []
    for on, colour, name in ((red, (220, 30, 30), "red"), (blue, (30, 30, 220), "blue")):
        if on:
            x, y = rng.integers(0, size - 14, 2)
            pixels[y:y + 14, x:x + 14] = colour
            boxes.append((name, [int(x), int(y), 14, 14]))
    return pixels, boxes


def write_scenes(folder: Path, count: int = 64, seed: int = 0) -> Path:
    """Photos with labels.csv (path,labels; labels separated by ';') and the same scenes' boxes in
    annotations.json (COCO); every combination equally often."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,labels"]
    coco: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}
    for index in range(count):
        red, blue = bool(index % 2), bool((index // 2) % 2)
        pixels, boxes = scene_with_boxes(red, blue, seed + index)
        Image.fromarray(pixels).save(folder / f"s{index}.png")
        rows.append(f"s{index}.png," + ";".join(name for name, on in (("red", red), ("blue", blue)) if on))
        coco["images"].append({"id": index, "file_name": f"s{index}.png", "width": 40, "height": 40})
        coco["annotations"] += [{"id": len(coco["annotations"]), "image_id": index, "bbox": box, "iscrowd": 0,
                                 "category_id": 1 if name == "red" else 2} for name, box in boxes]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder / "labels.csv"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The run every export test reads, with the default pretrained head (log-sum-exp pooling of per-location
    logits: `model.pooling=auto` picks it for a pretrained backbone; said outright for this from-scratch CNN),
    trained from the COCO file with box supervision (the CSV of the same scenes is what the evaluations read)."""
    labels = write_scenes(tmp_path_factory.mktemp("scenes") / "scenes")
    out = tmp_path_factory.mktemp("run") / "out"
    sets = [*SETS, "model.pooling=lse", "train.box_supervision=1"]
    result = CliRunner().invoke(main, ["run", "image-multilabel", "--data", str(labels.parent / "annotations.json"),
                                       "--out", str(out), *[arg for s in sets for arg in ("--set", s)]],
                                catch_exceptions=False)
    return labels, out, result


def test_run_names_label_sets_well_above_chance(finished):
    _, out, result = finished
    assert result.exit_code == 0, result.output
    assert "log-sum-exp pooling" in result.output and "box supervision: each label's" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # chance: each label is on in half the photos, so a random scorer's AP is about 0.5
    assert metrics["map"] >= 0.9 and metrics["micro_f1"] >= 0.85, metrics
    low, high = metrics["map_interval"]
    assert low - 1e-9 <= metrics["map"] <= high + 1e-9
    assert set(metrics["thresholds"]) == {"blue", "red"} and all(0 < t < 1 for t in metrics["thresholds"].values())
    assert (out / "labels.txt").read_text().split() == ["blue", "red"]
    page = (out / "report.html").read_text(encoding="utf-8")  # the run's page: label counts, curves, gallery
    assert "<td>red</td>" in page and "<h2>Worst errors</h2>" in page and 'src="data:image/png;base64,' in page


def test_box_supervision_puts_each_labels_strongest_location_on_its_square(finished):
    """Trained with the squares' boxes, each label's per-location logits peak inside its own square (more often
    than the same run with labels alone)."""
    import keras
    from dlpipe.models.artifacts import load_keras
    from dlpipe.models.classifier import LOCATION_LOGITS_LAYER_NAME

    _, out, _ = finished
    model = load_keras(out / "model.keras")
    logits = keras.Model(model.inputs, model.get_layer(LOCATION_LOGITS_LAYER_NAME).output)
    names = (out / "labels.txt").read_text().split()
    hits = 0
    for seed in range(2000, 2016):
        pixels, boxes = scene_with_boxes(True, True, seed)
        size = model.input_shape[1]
        resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR), np.float32)
        maps = logits.predict(resized[None], verbose=0)[0]  # (grid, grid, labels)
        grid = maps.shape[0]
        for name, (x, y, width, height) in boxes:
            row, col = np.unravel_index(np.argmax(maps[..., names.index(name)]), (grid, grid))
            cx, cy = (col + 0.5) / grid * 40, (row + 0.5) / grid * 40  # the cell's centre in the 40-px photo
            hits += x <= cx <= x + width and y <= cy <= y + height
    # 16 photos x 2 squares on this CNN's 4x4 grid: 26 trained with the boxes, 20 with labels only (measured once,
    # the run is deterministic); a peak anywhere would land in a square about 1 time in 6
    assert hits >= 23, hits


def test_every_export_agrees_with_keras_on_the_label_sets(finished):
    _, out, _ = finished
    from dlpipe.models.artifacts import read_record

    for name in ("savedmodel", "model.tflite"):
        parity = read_record(out / name)["parity"]
        assert parity["count"] > 0 and parity["decision_agreement"] >= 0.98, (name, parity)


def test_every_export_scores_the_keras_models_f1_and_map_on_unseen_scenes(finished, tmp_path):
    """`dlpipe evaluate` on fresh labelled scenes: each export's micro-F1 and mAP within 0.02 of the .keras file's."""
    _, out, _ = finished
    fresh = write_scenes(tmp_path / "fresh", count=32, seed=1000)
    scores = {}
    for artifact in ("model.keras", "savedmodel", "model.tflite"):
        report = tmp_path / f"{artifact}.json"
        result = CliRunner().invoke(main, ["evaluate", str(out / artifact), "--data", str(fresh), "--out", str(report)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        metrics = json.loads(report.read_text())
        scores[artifact] = (metrics["micro_f1"], metrics["map"])
    assert min(scores["model.keras"]) >= 0.85, scores
    for artifact in ("savedmodel", "model.tflite"):
        assert all(got >= want - 0.02 for got, want in zip(scores[artifact], scores["model.keras"])), scores


def test_predict_answers_the_set_of_labels_a_photo_shows(finished, tmp_path):
    _, out, _ = finished
    cases = {"both": (True, True), "red": (True, False), "none": (False, False)}
    for name, (red, blue) in cases.items():
        Image.fromarray(scene(red, blue, seed=1000 + len(name))).save(tmp_path / f"{name}.png")
    for artifact in ("keras", "float32"):
        result = CliRunner().invoke(main, ["predict", str(out), *[str(tmp_path / f"{n}.png") for n in cases],
                                           "--artifact", artifact, "--out", str(tmp_path / f"{artifact}.jsonl")],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows = {Path(row["input"]).stem: row for row in map(json.loads, (tmp_path / f"{artifact}.jsonl").read_text().splitlines())}
        assert set(rows["both"]["labels"]) == {"red", "blue"}, (artifact, rows["both"])
        assert rows["red"]["labels"] == ["red"], (artifact, rows["red"])
        assert rows["none"]["labels"] == [], (artifact, rows["none"])


def test_evaluate_scores_a_labelled_csv_with_map_and_f1(finished):
    labels, out, _ = finished
    result = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(labels)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mAP " in result.output and "micro F1" in result.output


def test_the_server_answers_a_set_of_labels(finished, tmp_path):
    import shutil

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app
    from fastapi.testclient import TestClient

    _, out, _ = finished
    version = tmp_path / "models" / "scenes" / "1"
    version.mkdir(parents=True)
    for name in ("model.keras", "labels.txt", "preprocessing.json"):
        shutil.copy(out / name, version / name)
    Image.fromarray(scene(True, True, seed=77)).save(tmp_path / "both.png")
    app = create_app(ModelRepository(tmp_path / "models"), ServerSettings())
    with TestClient(app) as client:
        body = {"instances": [{"b64": base64.b64encode((tmp_path / "both.png").read_bytes()).decode()}]}
        answer = client.post("/v1/models/scenes:predict", json=body)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["predictions"][0]["labels"]) == {"red", "blue"}


def test_a_malformed_csv_row_is_one_line_naming_file_and_line(tmp_path):
    (tmp_path / "bad.csv").write_text("path,labels\na.png,red\nb.png,red,blue,extra\n")
    Image.fromarray(scene(True, False, 0)).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["run", "image-multilabel", "--data", str(tmp_path / "bad.csv"), "--out",
                                       str(tmp_path / "out"), *[arg for s in SETS for arg in ("--set", s)]])
    assert result.exit_code != 0
    assert f"{tmp_path / 'bad.csv'}:3" in result.output and "Traceback" not in result.output


@pytest.mark.long
def test_cross_validation_pools_out_of_fold_scores_with_thresholds_from_other_folds(tmp_path):
    from dlpipe.pipelines import api

    labels = write_scenes(tmp_path / "scenes", count=32, seed=50)
    sets = [*SETS, "export.formats=[]", "train.epochs=8", "train.cv_folds=2", "train.box_supervision=1"]
    lines: list[str] = []
    result = api.run("image-multilabel", data=str(labels), out=tmp_path / "cv", sets=sets, echo=lines.append)
    # asked for, box supervision says why it cannot run on this model (average pooling), and the run goes on
    assert any("box supervision: off (it needs the lse head" in line for line in lines), lines
    cv = result.metrics["cross_validation"]
    assert cv["folds"] == 2 and cv["pooled"]["count"] == 32  # every scene scored once, by the fold that never saw it
    assert cv["pooled"]["map"] >= 0.8 and cv["pooled"]["micro_f1"] >= 0.7  # chance: about 0.5 for both
    low, high = cv["pooled"]["micro_f1_interval"]
    assert low <= cv["pooled"]["micro_f1"] <= high
    assert (tmp_path / "cv" / "cross_validation.png").stat().st_size > 0


def test_the_model_card_states_the_label_scores_and_thresholds(finished):
    _, out, _ = finished
    metrics = json.loads((out / "metrics.json").read_text())
    lines = [f"Validation mAP {metrics['map']:.3f}", f"micro F1 {metrics['micro_f1']:.3f}"]
    lines += [f"| {name} | {value:.3f} |" for name, value in metrics["thresholds"].items()]
    assert_card_states_the_run(out, lines, "decision_agreement")


def test_flip_tta_is_inside_every_export_and_its_thresholds_decide_there(tmp_path):
    """`evaluate.tta=flip`: the shipped model scores a photo and its mirror alike, decides at 0.5 as the thresholds
    chosen on the averaged validation scores said, and its .tflite agrees with it."""
    import tensorflow as tf
    from dlpipe.data.preprocess import ImagePreprocessing, load_image
    from dlpipe.models.artifacts import load_keras, read_record
    from dlpipe.models.tasks.multilabel.layers import shifted_scores

    labels = write_scenes(tmp_path / "scenes", count=48, seed=300)
    out = tmp_path / "tta"
    sets = [*SETS, "train.epochs=8", "evaluate.tta=flip", "export.formats=[keras,tflite]", "train.refit=false"]
    result = CliRunner().invoke(main, ["run", "image-multilabel", "--data", str(labels), "--out", str(out),
                                       *[arg for s in sets for arg in ("--set", s)]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip" and metrics["map"] >= 0.8, metrics  # chance: about 0.5
    spec = json.loads((out / "preprocessing.json").read_text())
    prep = ImagePreprocessing(**{key: value for key, value in spec.items() if key != "task"})
    photos = np.stack([load_image(tf.constant(path), prep).numpy() for path in metrics["predictions"]["inputs"]])
    model = load_keras(out / "model.keras")
    shipped = model.predict(photos, verbose=0)
    np.testing.assert_allclose(shipped, model.predict(photos[:, :, ::-1], verbose=0), atol=1e-5)  # mirror-blind
    names = (out / "labels.txt").read_text().split()
    thresholds = [metrics["thresholds"][name] for name in names]
    # the validation scores (averaged over the mirror) with each label's threshold moved to 0.5: what it ships
    np.testing.assert_allclose(shipped, shifted_scores(np.asarray(metrics["predictions"]["scores"]), thresholds),
                               atol=1e-4)
    parity = read_record(out / "model.tflite")["parity"]
    assert parity["count"] > 0 and parity["decision_agreement"] >= 0.98, parity
    assert "Test-time augmentation: flip (built into the model)." in (out / "MODEL_CARD.md").read_text()
