"""The detect task on the offline COCO detector: real photos, boxes in their own pixels, exports, serving.

Needs the converted detector (scripts/fetch_coco_detector.sh, run by scripts/setup.sh) and darknet's sample
photos (Debian package `darknet`, installed by scripts/setup.sh as root); each test skips saying which is missing.
The hand-checked boxes are those of bench/detection.py.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlpipe.models.tasks.detect import box_iou
from assets import require

PHOTOS = Path("/usr/share/darknet/data")
DOG_BOX = [124, 207, 313, 542]  # the dog in dog.jpg (768 x 576), hand-checked
CAR_BOX = [466, 76, 690, 170]  # the pickup truck behind the fence: its right edge is past the 512-px frame


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from dlpipe.models.coco_detector import missing_reason

    reason = missing_reason()
    require(not reason, "COCO detector (coco-detector)", reason or "")
    require((PHOTOS / "dog.jpg").is_file(), f"{PHOTOS}/dog.jpg",
            "install the Debian package darknet (scripts/setup.sh does, as root)")
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(PHOTOS / "dog.jpg", folder / "dog.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return folder


@pytest.fixture(scope="module")
def exported(photos, tmp_path_factory) -> Path:
    """The float32 .tflite, checked against the graph on dog.jpg at export (its parity record)."""
    from dlpipe.pipelines.exporting import export_named

    return export_named("coco-detector", "tflite", tmp_path_factory.mktemp("export"), [str(photos / "dog.jpg")])


def boxes_of(row: dict, label: str) -> np.ndarray:
    return np.array([item["box"] for item in row["top"] if item["label"] == label]).reshape(-1, 4)


def test_predict_finds_the_dog_in_the_photos_pixels_and_reports_a_corrupt_file(photos, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from dlpipe.pipelines.cli import main

    out, drawn = tmp_path / "boxes.jsonl", tmp_path / "drawn"
    result = CliRunner().invoke(main, ["predict", "--model", "coco-detector", str(photos), "--out", str(out),
                                       "--draw", str(drawn), "--min-score", "0.3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {Path(row["input"]).name: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"broken.jpg", "dog.jpg"}
    assert "broken.jpg" in rows["broken.jpg"]["input"] and "\n" not in rows["broken.jpg"]["error"]
    dog = rows["dog.jpg"]
    assert box_iou(np.array([DOG_BOX]), boxes_of(dog, "dog")).max() >= 0.7
    # boxes are in the 768 x 576 photo's pixels, not the 512 x 512 model input
    assert box_iou(np.array([CAR_BOX]), boxes_of(dog, "car")).max() >= 0.7
    assert all(0 <= x <= 768 and 0 <= y <= 576 for item in dog["top"] for x, y in [item["box"][:2], item["box"][2:]])
    assert all(item["score"] >= 0.3 for item in dog["top"])
    drawing = next(drawn.rglob("dog.jpg"))
    assert dog["drawing"] == str(drawing) and "drawing" not in rows["broken.jpg"]  # each row names its picture
    with Image.open(drawing) as image:
        assert image.size == (768, 576)


def test_tflite_export_agrees_with_the_graph_and_the_named_model_serves(photos, exported):
    from fastapi.testclient import TestClient

    from dlpipe.models import artifacts
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows
    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import create_app

    path = exported
    parity = artifacts.read_record(path)["parity"]
    assert parity["boxes"] >= 3 and parity["top1_agreement"] == 1.0 and parity["mean_box_iou"] > 0.95
    runtime = load_runtime(path)
    assert runtime.task.name == "detect" and runtime.class_names[3] == "motorcycle"  # COCO's names, not darknet's
    inputs = runtime.task.collect_inputs([str(photos / "dog.jpg")])
    row = next(iter(result_rows(runtime, inputs)))[0]
    assert box_iou(np.array([DOG_BOX]), boxes_of(row, "dog")).max() >= 0.7
    with TestClient(create_app(ModelRepository("coco-detector"))) as client:
        photo = base64.b64encode((photos / "dog.jpg").read_bytes()).decode()
        answer = client.post("/v1/models/coco-detector:predict", json={"instances": [{"b64": photo}]})
        assert answer.status_code == 200, answer.text
        found = answer.json()["predictions"][0]
        assert box_iou(np.array([DOG_BOX]), boxes_of(found, "dog")).max() >= 0.7
        bad = client.post("/v1/models/coco-detector:predict", json={"instances": [{"b64": base64.b64encode(b"no").decode()}]})
        assert bad.status_code == 400 and "not a JPEG" in bad.json()["error"]


def test_mediapipe_object_detector_runs_the_exported_tflite(photos, exported):
    import subprocess

    from edge.mediapipe_env import require_mediapipe

    python = require_mediapipe()
    path = exported
    runner = Path(__file__).resolve().parents[1] / "edge" / "mediapipe_detect_runner.py"
    job = {"model": str(path), "images": [str(photos / "dog.jpg")], "score_threshold": 0.3}
    done = subprocess.run([str(python), str(runner)], input=json.dumps(job), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert "error" not in answer, answer
    found = answer["detections"][0]
    dog = np.array([d["box"] for d in found if d["label"] == "dog"]).reshape(-1, 4)
    assert box_iou(np.array([DOG_BOX]), dog).max() >= 0.7


def test_thresholds_nms_and_scaling_to_the_photo_need_no_model():
    from dlpipe.errors import DataError
    from dlpipe.models.tasks import get_task
    from dlpipe.models.tasks.detect import select_detections

    task = get_task("detect")
    rows = np.array([[0.1, 0.1, 0.5, 0.5, 0.9, 16], [0.12, 0.1, 0.5, 0.52, 0.8, 16],  # a duplicate dog
                     [0.1, 0.1, 0.5, 0.5, 0.7, 2], [0.6, 0.6, 0.9, 0.9, 0.2, 0]], np.float32)
    kept = select_detections(rows, 0.3, 0.5, 100)
    assert kept[:, 5].tolist() == [16, 2]  # the duplicate is suppressed, another label at the same place is not
    assert len(select_detections(rows, 0.3, 1.0, 100)) == 3 and len(select_detections(rows, 0.0, 0.5, 1)) == 1
    scaled = task.finish({"sizes": np.array([[200, 400]])}, rows[None])  # height 200, width 400
    assert scaled[0, 0, :4].tolist() == pytest.approx([40, 20, 200, 100])
    described = task.with_options(min_score=0.75).describe(scaled[0], [str(i) for i in range(80)], 5)
    assert [b["label"] for b in described["top"]] == ["16"] and described["count"] == 1
    with pytest.raises(DataError, match="does not apply to image models"):
        get_task("image").with_options(min_score=0.5)


def coco_file(folder: Path, objects: dict[str, list[tuple[str, list[int]]]]) -> Path:
    """A COCO instances JSON for darknet photos copied into folder/images, with boxes as x1 y1 x2 y2."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, categories = [], [], {}
    for image_id, (name, boxes) in enumerate(objects.items(), start=1):
        shutil.copy(PHOTOS / name, folder / "images" / name)
        with Image.open(folder / "images" / name) as image:
            images.append({"id": image_id, "file_name": name, "width": image.width, "height": image.height})
        for label, (x1, y1, x2, y2) in boxes:
            categories.setdefault(label, 100 + len(categories))  # ids of the file's own; names are what match
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": categories[label],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i, "name": n} for n, i in categories.items()]}))
    return path


def test_evaluate_scores_the_detector_on_coco_boxes_and_a_wrong_label_costs_its_ap(photos, exported, tmp_path):
    from click.testing import CliRunner

    from dlpipe.pipelines.cli import main

    hand_checked = {"dog.jpg": [("dog", DOG_BOX), ("bicycle", [111, 125, 564, 445]), ("truck", [466, 76, 690, 170])],
                    "person.jpg": [("person", [187, 112, 276, 375]), ("dog", [67, 262, 201, 348]),
                                   ("horse", [398, 138, 602, 342])]}
    path = coco_file(tmp_path / "right", hand_checked)
    result = CliRunner().invoke(main, ["evaluate", "coco-detector", "--data", str(path), "--out", str(tmp_path / "m.json")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output and "on 2 photos, 6 objects" in result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["ap50"] >= 0.8 and report["map"] >= 0.5 and report["recall_at_min_score"] >= 0.8
    assert set(report["per_class"]) == {"dog", "bicycle", "truck", "person", "horse"}
    assert report["per_class"]["dog"]["objects"] == 2 and report["per_class"]["dog"]["ap50"] >= 0.9
    # the exported float32 .tflite finds these boxes as well as the graph does: AP within 0.05
    tflite = CliRunner().invoke(main, ["evaluate", str(exported), "--data", str(path), "--out", str(tmp_path / "t.json")],
                                catch_exceptions=False)
    assert tflite.exit_code == 0, tflite.output
    exported_report = json.loads((tmp_path / "t.json").read_text())
    for key in ("ap50", "map"):
        assert exported_report[key] >= report[key] - 0.05, (key, exported_report[key], report[key])
    # the same photos with the horse called an airplane: no airplane is found, the horse's detection matches nothing
    wrong = {**hand_checked, "person.jpg": [("person", [187, 112, 276, 375]), ("dog", [67, 262, 201, 348]),
                                            ("airplane", [398, 138, 602, 342])]}
    from dlpipe.pipelines.evaluation import evaluate_artifact

    worse = evaluate_artifact("coco-detector", coco_file(tmp_path / "wrong", wrong))
    assert worse["per_class"]["airplane"]["ap50"] < 0.2 and worse["map"] < report["map"]
    bad = CliRunner().invoke(main, ["evaluate", "coco-detector", "--data", str(coco_file(
        tmp_path / "bad", {"dog.jpg": [("motorbike", [10, 10, 50, 50])]}))])
    assert bad.exit_code != 0 and "motorbike -> motorcycle?" in bad.output and "Traceback" not in bad.output


def test_evaluate_reads_the_same_boxes_from_pascal_voc_and_yolo_folders(photos, tmp_path):
    """`--data` is told apart by what it holds: the hand-checked boxes as COCO, VOC and YOLO are the same labels,
    and the detector scores on the VOC folder as on COCO's file."""
    from click.testing import CliRunner
    from helpers_boxes import photo_folder, write_labels
    from PIL import Image

    from dlpipe.data.box_annotations import BoxLabel
    from dlpipe.models.tasks.detect import DetectTask
    from dlpipe.pipelines.cli import main

    hand_checked = {"dog.jpg": [("dog", DOG_BOX), ("bicycle", [111, 125, 564, 445])],
                    "person.jpg": [("person", [187, 112, 276, 375]), ("horse", [398, 138, 602, 342])]}
    labelled = {}
    for fmt in ("coco", "voc", "yolo"):
        scenes = []
        for name, boxes in hand_checked.items():
            shutil.copy(PHOTOS / name, photo_folder(tmp_path / fmt, fmt) / name)
            with Image.open(PHOTOS / name) as image:
                scenes.append((name, image.size, [BoxLabel(label, tuple(map(float, box))) for label, box in boxes]))
        write_labels(tmp_path / fmt, fmt, scenes, ["bicycle", "dog", "horse", "person"])
        labelled[fmt] = DetectTask().labelled_data(tmp_path / fmt)
        assert [Path(key).name for key in labelled[fmt].inputs.ids] == ["dog.jpg", "person.jpg"]
    for fmt in ("voc", "yolo"):
        assert [[(o.label, pytest.approx(o.box)) for o in objects] for objects in labelled[fmt].labels] == \
            [[(o.label, o.box) for o in objects] for objects in labelled["coco"].labels], fmt
    result = CliRunner().invoke(main, ["evaluate", "coco-detector", "--data", str(tmp_path / "voc"), "--out",
                                       str(tmp_path / "m.json")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "on 2 photos, 4 objects" in result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["ap50"] >= 0.8 and set(report["per_class"]) == {"dog", "bicycle", "person", "horse"}


def test_draw_is_for_detectors_and_a_segmenter_is_pointed_at_its_overlays(tmp_path):
    from dlpipe.errors import DataError
    from dlpipe.models.tasks import get_task
    from dlpipe.models.tasks.base import InputSet
    from dlpipe.models.tasks.detect import BoxDrawer

    with pytest.raises(DataError, match="nothing to draw"):
        get_task("image").output_writer(None, InputSet(), tmp_path / "drawn")
    with pytest.raises(DataError, match="overlays/: give --out FOLDER"):
        get_task("segment").output_writer(tmp_path / "rows.jsonl", InputSet(), tmp_path / "drawn")
    drawer = get_task("detect").output_writer(None, InputSet(), tmp_path / "drawn")
    assert isinstance(drawer, BoxDrawer) and drawer.rows_file is None
    assert get_task("detect").output_writer(tmp_path / "rows.jsonl", InputSet()) is None
