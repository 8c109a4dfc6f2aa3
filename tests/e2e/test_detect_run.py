"""`dlpipe run detect` end to end on generated scenes: a run killed mid-training resumes, the trained detector
finds the shapes, its exports agree with it, and predict, evaluate and the server work on it unchanged."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import InterruptAfter
from dlpipe.pipelines import api
from dlpipe.pipelines.cli import main
from helpers_boxes import CLASS_NAMES, write_box_dataset
from helpers_card import assert_card_states_the_run

EPOCHS = 20
# a from-scratch small encoder on 64 px scenes: 16x16 heat maps, trains in about a minute; it ships at the size it
# trained at (the larger inference size is tested on the COCO start below)
TINY_DETECT_SETS = [
    "model.encoder=small", "model.weights=none", "model.image_size=64", "model.inference_scale=1",
    "model.neck_filters=[32,32,16]",
    "model.head_filters=16", f"train.epochs={EPOCHS}", "train.batch_size=8", "train.learning_rate=0.005",
    "train.tensorboard=false", "train.progress=none", "train.early_stopping_patience=0", "evaluate.bootstrap=100",
    "export.parity_sample=12", "export.formats=[keras,savedmodel,tflite,tflite-float16]", "train.int8_epochs=2",
]


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    """A run killed after its 4th epoch, then resumed to the end (the resume is part of what is tested)."""
    data = tmp_path_factory.mktemp("scenes") / "coco"
    write_box_dataset(data, "coco", n_photos=48, size=64, seed=0)
    out = tmp_path_factory.mktemp("detrun") / "out"
    with pytest.raises(KeyboardInterrupt):
        api.run("detect", data=str(data), out=out, sets=TINY_DETECT_SETS, callbacks=[InterruptAfter(3)],
                echo=lambda _: None)
    assert (out / "checkpoints" / "backup_train").is_dir() and not (out / "metrics.json").exists()
    lines: list[str] = []
    result = api.run("detect", out=out, resume=True, echo=lines.append)
    return data, out, result, lines


def test_a_killed_run_resumes_and_the_detector_finds_the_shapes(detect_run):
    _, out, result, _ = detect_run
    with open(out / "history_train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # epochs 0-3 before the kill (3 is repeated: it was interrupted before its backup), then 3 .. the last
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3, *range(3, EPOCHS)], [row["epoch"] for row in rows]
    assert float(rows[4]["loss"]) < float(rows[0]["loss"])  # the resumed epoch starts from the backed-up weights
    metrics = json.loads((out / "metrics.json").read_text())
    # chance (boxes at random places) scores ~0; the tiny model from scratch finds most shapes
    assert metrics["ap50"] > 0.5 and metrics["map"] > 0.2, metrics
    low, high = metrics["map_interval"]
    assert 0 <= low <= high <= 1
    assert set(metrics["per_class"]) <= set(CLASS_NAMES) and metrics["count"] == 10
    assert set(metrics["pr_curves"]) <= set(CLASS_NAMES) and len(next(iter(metrics["pr_curves"].values()))["recall"]) == 101
    for picture in ("pr_curves.png", "sample_detections.png"):
        assert (out / picture).stat().st_size > 0
    assert (out / "labels.txt").read_text().split() == CLASS_NAMES
    assert result.metrics["map"] == metrics["map"]


def test_exports_agree_with_the_keras_model(detect_run):
    from dlpipe.models import artifacts

    _, out, _, _ = detect_run
    for artifact in (out / "savedmodel", out / "model.tflite", out / "model_float16.tflite"):
        parity = artifacts.read_record(artifact)["parity"]
        assert parity["boxes"] > 0 and parity["top1_agreement"] >= 0.95 and parity["mean_box_iou"] > 0.9, (artifact, parity)


def test_the_int8_phase_fine_tunes_with_the_ranges_it_measured(detect_run):
    """train.int8_epochs: a third phase fits the network with its activations rounded to int8, at ranges measured
    once on training photos and kept for a resume."""
    _, out, result, _ = detect_run
    summary = json.loads((out / "report.json").read_text())["stages"]["train"]["summary"]
    assert summary.startswith(f"{EPOCHS + 2} epochs in 2 phase(s): train, int8"), summary
    with open(out / "history_int8.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 2 and all(loss == loss for loss in losses), losses  # two finite epochs
    ranges = json.loads((out / "checkpoints" / "int8_ranges.json").read_text())
    assert {"head_int8", "heatmap_out_int8", "neck0_relu_int8"} <= set(ranges), sorted(ranges)
    assert all(low <= 0.0 <= high and high > low for low, high in ranges.values()), ranges


def test_exporting_int8_names_the_int8_phase_only_where_the_detector_trained_without_it(detect_run, tmp_path):
    from dlpipe.pipelines.detect.train import int8_training_note

    _, out, _, _ = detect_run
    assert int8_training_note(out) is None  # the fixture's run has the phase
    without = tmp_path / "run"
    without.mkdir()
    config = (out / "config.yaml").read_text()
    assert "  int8_epochs: 2\n" in config
    (without / "config.yaml").write_text(config.replace("  int8_epochs: 2\n", "  int8_epochs: 0\n"))
    assert "--set train.int8_epochs=4" in int8_training_note(without)
    assert int8_training_note(tmp_path / "nothing") is None


@pytest.mark.long  # an int8 conversion with two calibrations: ~10 s on the suite's budget
def test_int8_runs_the_network_in_integers_the_decoding_in_float_and_agrees(detect_run, tmp_path):
    """`dlpipe export RUN --format tflite-int8`: every convolution but the heat-map logits' last one is int8 (int8,
    the head map's concatenation gave the logits the box head's scale, and every negative logit read 0); the
    decoding after the head map stays float (quantised, boxes, scores and class indices would share one 8-bit
    scale); its scores and boxes agree with Keras."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from dlpipe.models import artifacts
    from dlpipe.pipelines.exporting import export_run

    data, out, _, _ = detect_run
    path = export_run(out, "tflite-int8", tmp_path)
    interpreter = Interpreter(str(path))
    keras_model = artifacts.load_keras(out / artifacts.KERAS_FILE)
    interpreter.allocate_tensors()
    for photo in sorted((data / "images").iterdir())[:4]:
        pixels = np.asarray(Image.open(photo).convert("RGB").resize((64, 64)), np.float32)[None]
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
        interpreter.invoke()
        found = {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}
        expected = np.sort(keras_model(pixels).numpy()[0][:, 4])[::-1][:10]
        # the ten best scores, as Keras gives them
        np.testing.assert_allclose(np.sort(found["scores"])[::-1][:10], expected, atol=0.1)
    types = {detail["index"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    written: dict[str, set] = {}
    float_convolutions = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - each op's name and output tensors
        written.setdefault(op["op_name"], set()).add(types[op["outputs"][0]])
        if op["op_name"] == "CONV_2D" and types[op["outputs"][0]] == np.float32:
            float_convolutions.append(names[op["outputs"][0]])
    assert len(float_convolutions) == 1 and "heatmap_out" in float_convolutions[0], float_convolutions
    assert written["CONV_2D"] == {np.int8, np.float32} and written["DEPTHWISE_CONV_2D"] == {np.int8}, written
    assert written["TOPK_V2"] == {np.float32} and written["PACK"] == {np.float32}, written  # scores; boxes
    parity = artifacts.read_record(path)["parity"]
    assert parity["boxes"] > 0 and parity["top1_agreement"] >= 0.9 and parity["mean_box_iou"] > 0.8, parity


def test_the_tflite_holds_mediapipes_four_outputs_and_the_decoding(detect_run):
    from ai_edge_litert.interpreter import Interpreter

    _, out, _, _ = detect_run
    interpreter = Interpreter(str(out / "model.tflite"))
    assert {d["name"] for d in interpreter.get_output_details()} == {"locations", "classes", "scores", "count"}
    assert interpreter.get_input_details()[0]["shape"].tolist() == [1, 64, 64, 3]
    ops = {detail["op_name"] for detail in interpreter._get_ops_details()}  # noqa: SLF001
    assert {"MAX_POOL_2D", "TOPK_V2"} <= ops and not any(op.startswith(("FLEX", "READ_VARIABLE")) for op in ops), ops


def test_evaluate_scores_artifacts_on_a_pascal_voc_folder_alike(detect_run, tmp_path):
    _, out, _, _ = detect_run
    fresh = tmp_path / "voc"
    write_box_dataset(fresh, "voc", n_photos=12, size=64, seed=7)
    scores = {}
    for artifact in ("model.keras", "model.tflite"):
        report_file = tmp_path / f"{artifact}.json"
        result = CliRunner().invoke(main, ["evaluate", str(out / artifact), "--data", str(fresh), "--out",
                                           str(report_file)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "mAP" in result.output and "on 12 photos" in result.output
        scores[artifact] = json.loads(report_file.read_text())["ap50"]
    assert scores["model.keras"] > 0.4 and abs(scores["model.keras"] - scores["model.tflite"]) < 0.03, scores


def test_predict_draws_boxes_in_the_photos_pixels_and_the_server_answers(detect_run, tmp_path):
    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import create_app
    from fastapi.testclient import TestClient
    from PIL import Image

    data, out, _, _ = detect_run
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in (0, 1, 2):
        big = Image.open(data / "images" / f"photo_{index:03d}.jpg").resize((128, 96))  # not the training size
        big.save(photos / f"photo_{index}.jpg")
    rows_file = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["predict", str(out), str(photos), "--out", str(rows_file), "--draw",
                                       str(tmp_path / "drawn"), "--min-score", "0.2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(rows) == 3 and any(row["top"] for row in rows)
    for row in rows:
        for box in row["top"]:
            x1, y1, x2, y2 = box["box"]
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96 and box["label"] in CLASS_NAMES
        assert Path(row["drawing"]).is_file()
    image = base64.b64encode((photos / "photo_0.jpg").read_bytes()).decode()
    with TestClient(create_app(ModelRepository(out))) as client:
        answer = client.post("/v1/models/out:predict", json={"instances": [{"b64": image}]})
        assert answer.status_code == 200, answer.text
        assert all(box["label"] in CLASS_NAMES for box in answer.json()["predictions"][0]["top"])


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_the_load_stage_reads_voc_and_yolo_as_coco_negatives_included(tmp_path, fmt):
    from dlpipe.pipelines.detect.load import DetectLoadConfig, DetectLoadStage
    from dlpipe.pipelines.stage import RunContext

    def loaded(folder: Path) -> RunContext:
        ctx = RunContext(out_dir=tmp_path, seed=3, config=None, task=None)
        DetectLoadStage(DetectLoadConfig(path=str(folder))).run(ctx)
        return ctx

    write_box_dataset(tmp_path / "coco", "coco", n_photos=12, size=64, seed=2)
    write_box_dataset(tmp_path / fmt, fmt, n_photos=12, size=64, seed=2)
    reference, other = loaded(tmp_path / "coco"), loaded(tmp_path / fmt)
    assert other.class_names == reference.class_names == CLASS_NAMES
    for split in ("train", "val"):
        ours, theirs = getattr(reference, split), getattr(other, split)
        assert [Path(p).name for p in ours.inputs] == [Path(p).name for p in theirs.inputs]
        assert [[(o.label, o.box) for o in photo] for photo in ours.objects] == \
               [[(o.label, o.box) for o in photo] for photo in theirs.objects]
    assert other.report["data"]["photos_without_boxes"] == 3  # photos 3, 7 and 11


@pytest.mark.parametrize("problem, message", [
    ("missing", "missing"),
    ("outside", "outside"),
    ("category", "category_id 99"),
])
def test_bad_entries_stop_with_one_line_naming_the_file(tmp_path, problem, message):
    data = tmp_path / "coco"
    write_box_dataset(data, "coco", n_photos=8, size=64, seed=1)
    document = json.loads((data / "annotations.json").read_text())
    if problem == "missing":
        (data / "images" / "photo_001.jpg").unlink()
    elif problem == "outside":
        document["annotations"][0]["bbox"] = [500, 500, 10, 10]
    else:
        document["annotations"][0]["category_id"] = 99
    (data / "annotations.json").write_text(json.dumps(document))
    result = CliRunner().invoke(main, ["run", "detect", "--data", str(data), "--out", str(tmp_path / "run"),
                                       "--set", "model.encoder=small", "--set", "model.weights=none"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line, line
    assert ("photo_001.jpg" in line) if problem == "missing" else ("annotations.json" in line), line
    assert "Traceback" not in result.output


@pytest.mark.long
def test_the_default_coco_start_fine_tunes_and_exports_for_mediapipe(tmp_path):
    """The default start (coco-detector's ported CenterNet, a new class head) trains both phases and exports a
    .tflite that agrees with it and an int8 one (activation ranges narrowed); the metadata carries the COCO weights' licence
    note."""
    from ai_edge_litert.interpreter import Interpreter
    from dlpipe.models import artifacts
    from dlpipe.models.coco_detector import LICENSE_NOTE

    data = tmp_path / "coco"
    write_box_dataset(data, "coco", n_photos=12, size=64, seed=3)
    out = tmp_path / "run"
    lines: list[str] = []
    api.run("detect", data=str(data), out=out, echo=lines.append,
            sets=["model.image_size=64", "train.epochs=1", "train.finetune_epochs=1", "train.tensorboard=false",
                  "train.progress=none", "evaluate.bootstrap=20", "export.formats=[keras,tflite,tflite-int8]",
                  "export.parity_sample=4"])
    assert any("64x64 input (evaluated and exported at 96)" in line for line in lines), lines  # 64 x 1.3 -> 96
    history = json.loads((out / "report.json").read_text())["stages"]["train"]
    assert "2 epochs in 2 phase(s): head, finetune" in history["summary"], history
    assert json.loads((out / "preprocessing.json").read_text())["image_size"] == 96
    assert Interpreter(str(out / "model.tflite")).get_input_details()[0]["shape"].tolist() == [1, 96, 96, 3]
    record = artifacts.read_record(out / "model.tflite")
    assert record["parity"]["boxes"] == 0 or record["parity"]["top1_agreement"] >= 0.95, record["parity"]
    assert LICENSE_NOTE.split(" (MIT)")[0] in (out / "model.tflite").read_bytes().decode("latin-1")
    int8 = artifacts.read_record(out / "model_int8.tflite")  # the narrowed-range int8 conversion, checked like the rest
    assert int8["parity"] is not None and int8["parity"]["count"] == record["parity"]["count"] > 0, int8


@pytest.mark.long
def test_check_device_finds_the_trained_detectors_boxes_in_mediapipe_and_chromium(detect_run, tmp_path):
    """The run's .tflite in MediaPipe's ObjectDetector (Python) and in the web page (Chromium) on the training
    scenes: a box counts when MediaPipe has one of the same label at IoU >= 0.9 (its whole-pixel boxes)."""
    from edge.mediapipe_env import require_browser, require_mediapipe

    require_mediapipe()
    require_browser()
    data, out, _, _ = detect_run
    report_file = tmp_path / "device.json"
    result = CliRunner().invoke(main, ["check-device", str(out / "model.tflite"), "--data", str(data / "images"),
                                       "--out", str(report_file), "--web"], catch_exceptions=False)
    assert report_file.is_file(), result.output
    report = json.loads(report_file.read_text())
    python, web = report["files"]["model.tflite"], report["web"]["model.tflite"]
    assert python["boxes"] >= 10 and python["box_agreement"] >= 0.9 and web["box_agreement"] >= 0.9, (python, web)


def test_the_savedmodel_decodes_photos_and_applies_class_wise_nms_in_the_graph(detect_run):
    """serving_default takes encoded photos and answers what `dlpipe predict` keeps (NMS at 0.5) in their pixels."""
    import numpy as np
    import tensorflow as tf
    from dlpipe.models.runtimes import load_runtime

    data, out, _, _ = detect_run
    photos = sorted((data / "images").glob("*.jpg"))[:6]
    answer = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"](
        image_bytes=tf.constant([p.read_bytes() for p in photos]))
    runtime = load_runtime(out / "model.keras")
    runtime.task = runtime.task.with_options(min_score=0.2)
    for index, photo in enumerate(photos):
        count = int(answer["count"][index])
        scores = answer["scores"][index].numpy()[:count]
        assert np.all(np.diff(scores) <= 1e-6) and np.all(answer["scores"][index].numpy()[count:] == 0)
        kept = scores >= 0.2
        described = runtime.task.describe(_keras_rows(runtime, photo), runtime.class_names, 1)
        assert int(kept.sum()) == described["count"], (photo.name, scores, described)
        for box, item in zip(answer["boxes"][index].numpy()[:count][kept], described["top"]):
            assert np.allclose(box, item["box"], atol=0.6), (box, item)


def _keras_rows(runtime, photo):
    inputs = runtime.task.collect_inputs([str(photo)])
    batch = next(iter(runtime.task.batches(inputs, runtime.preprocessing, 1))).batch
    return runtime.predict(batch)[0]  # boxes in the photo's pixels


def test_the_model_card_states_the_detectors_figures(detect_run):
    _, out, _, _ = detect_run
    metrics = json.loads((out / "metrics.json").read_text())
    lines = [f"Validation COCO mAP (IoU 0.50:0.95) {metrics['map']:.3f}", f"AP50 {metrics['ap50']:.3f}",
             f"precision {metrics['precision_at_min_score']:.3f}, recall {metrics['recall_at_min_score']:.3f}"]
    lines += [f"| {name} | {row['ap']:.3f} | {row['ap50']:.3f} | {row['objects']} |"
              for name, row in metrics["per_class"].items()]
    assert_card_states_the_run(out, lines, "mean_box_iou")


def _errors_of(boxes, truth, names, min_score):
    """Missed + false boxes of one photo at min_score, matching greedily by score at IoU >= 0.5 (as COCO's AP50)."""
    def overlap(a, b):
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    left, false = list(truth), 0
    for box in sorted((b for b in boxes if b[4] >= min_score), key=lambda b: -b[4]):
        candidates = [t for t in left if t[0] == names[int(box[5])] and overlap(box, t[1:5]) >= 0.5]
        if candidates:
            left.remove(max(candidates, key=lambda t: overlap(box, t[1:5])))
        else:
            false += 1
    return len(left), false


def test_the_report_page_shows_the_photos_with_the_most_missed_and_false_boxes(detect_run):
    import re

    _, out, _, _ = detect_run
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = metrics["predictions"]
    counted = [_errors_of(b, t, metrics["class_names"], metrics["min_score"])
               for b, t in zip(predictions["boxes"], predictions["truth"])]
    wrong = sorted((sum(c) for c in counted if sum(c)), reverse=True)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "precision against recall per class" in page and "true boxes and the detections kept" in page
    assert wrong, "the tiny detector should miss or add a box somewhere among its validation photos"
    gallery = page[page.index("<h2>Worst detections</h2>"):].split("</section>")[0]
    shown = [int(m) + int(f) for m, f in re.findall(r"<div>(\d+) missed[^;]*; (\d+) false", gallery)]
    assert shown == wrong[:6] and gallery.count("<svg ") == len(shown)
