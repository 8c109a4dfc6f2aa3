"""The detect task's files in MediaPipe's ObjectDetector: the `web` page in headless Chromium, and `dlpipe
check-device` (Python and `--web`), on coco-detector's .tflite and darknet's sample photos.

Needs the converted detector (scripts/fetch_coco_detector.sh), darknet's photos (Debian `darknet`), chromium,
MediaPipe's web files and .venv-mediapipe, all from scripts/setup.sh (a failure under CI when missing).

MediaPipe stretches a photo to 512x512 by plain bilinear sampling; dlpipe's detect preprocessing antialiases. To
compare the runtimes on the same pixels, the page gets each photo as dlpipe prepares it, enlarged 4x by repeating
pixels: MediaPipe's sampling (source pixel 4x for output pixel x) then hands the model exactly dlpipe's pixels,
and its whole-pixel boxes are 4x finer. On the raw photos the agreement is what check-device measures.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from assets import require
from click.testing import CliRunner
from dlpipe.models.tasks.detect import box_iou
from dlpipe.pipelines.cli import main
from PIL import Image

from edge.mediapipe_env import require_browser, require_mediapipe

PHOTOS = Path("/usr/share/darknet/data")
ENLARGE = 4


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from dlpipe.models.coco_detector import missing_reason

    reason = missing_reason()
    require(not reason, "COCO detector (coco-detector)", reason or "")
    require((PHOTOS / "dog.jpg").is_file(), f"{PHOTOS}/*.jpg", "install the Debian package darknet (scripts/setup.sh "
                                                                "does, as root)")
    folder = tmp_path_factory.mktemp("photos")
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, folder / photo.name)
    return folder


def exported(fmt: str, photos: Path, out: Path) -> Path:
    result = CliRunner().invoke(main, ["export", "coco-detector", "--format", fmt, "--out", str(out),
                                       "--sample", str(photos / "dog.jpg")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def as_mediapipe_reports(box: list[float]) -> list[int]:
    """MediaPipe's BoundingBox: origin and size in whole pixels (truncated)."""
    x1, y1 = math.floor(box[0]), math.floor(box[1])
    return [x1, y1, x1 + math.floor(box[2] - box[0]), y1 + math.floor(box[3] - box[1])]


@pytest.mark.long
def test_web_export_draws_the_boxes_litert_finds_in_chromium(photos, tmp_path):
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.web_check import browser_rows

    chromium = require_browser()
    folder = exported("web", photos, tmp_path / "export") / "web"
    assert {"index.html", "model.tflite", "labels.txt"} <= {path.name for path in folder.iterdir()}
    assert (folder / "mediapipe" / "vision_bundle.mjs").is_file()
    assert "ObjectDetector" in (folder / "index.html").read_text()
    site = tmp_path / "site"
    shutil.copytree(folder, site)
    (site / "inputs").mkdir()
    runtime = load_runtime(folder / "model.tflite")  # LiteRT
    task, names, reference = runtime.task, [], []
    for photo in sorted(photos.glob("*.jpg")):
        pixels = task.numpy_input(photo.read_bytes(), runtime.preprocessing)["pixels"]
        pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        Image.fromarray(pixels.repeat(ENLARGE, 0).repeat(ENLARGE, 1)).save(site / "inputs" / f"{photo.stem}.png")
        size = np.array([[pixels.shape[0] * ENLARGE, pixels.shape[1] * ENLARGE]], np.int32)
        output = np.asarray(runtime.predict({"pixels": pixels[None].astype(np.float32), "sizes": size}))[0]
        reference.append(task.describe(output, runtime.class_names, 0)["top"])  # min score 0.3, NMS 0.5, as predict
        names.append(f"inputs/{photo.stem}.png")
    rows = browser_rows(chromium, site, "inputs=" + ",".join(names) + "&min_score=0.15", 180)
    assert not isinstance(rows, dict), rows
    assert [row["input"] for row in rows] == names and rows[0]["width"] == 512 * ENLARGE
    ious, scores = [], []
    for ours, row in zip(reference, rows):
        for box in ours:
            same = [item for item in row["detections"] if item["label"] == box["label"]]
            mine = np.array([as_mediapipe_reports(box["box"])])
            overlaps = box_iou(mine, np.array([item["box"] for item in same]).reshape(-1, 4))
            ious.append(float(overlaps.max()) if same else 0.0)
            if same:
                scores.append(abs(same[int(overlaps.argmax())]["score"] - box["score"]))
        shown = [item for item in row["detections"] if item["score"] >= 0.3]
        assert len(shown) == len(ours), (row["input"], shown, ours)  # the page's threshold and NMS are predict's
    share = np.mean(np.array(ious) >= 0.9)
    print(f"web page vs LiteRT: {share:.1%} of {len(ious)} boxes at IoU >= 0.9, mean IoU {np.mean(ious):.3f}")
    assert len(ious) >= 20 and share >= 0.95 and max(scores) < 1e-3


@pytest.fixture(scope="module")
def checked(photos, tmp_path_factory) -> tuple[Path, dict, str, int]:
    """(the float32 .tflite, check-device's report with --web, its output, exit code at --min-agreement 0.99)."""
    require_mediapipe()
    require_browser()
    root = tmp_path_factory.mktemp("check-device")
    tflite = exported("tflite", photos, root / "export") / "model.tflite"
    out = root / "device_check.json"
    result = CliRunner().invoke(main, ["check-device", str(tflite), "--data", str(photos), "--out", str(out), "--web",
                                       "--min-agreement", "0.99"], catch_exceptions=False)
    assert out.is_file(), result.output
    return tflite, json.loads(out.read_text()), result.output, result.exit_code


def test_check_device_compares_mediapipes_boxes_with_the_named_models(photos, checked):
    """Every figure recomputed here from the named model's boxes (those `dlpipe predict` keeps, unrounded) and
    this test's own ObjectDetector run (tests/edge/mediapipe_detect_runner.py)."""
    import subprocess

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks.detect import select_detections

    tflite, report, output, code = checked
    assert report["task"] == "detect" and report["reference"] == "coco-detector" and report["web"]
    runtime, ours = load_runtime("coco-detector"), {}
    paths = sorted(photos.glob("*.jpg"))
    for path in paths:
        inputs = runtime.task.collect_inputs([str(path)])
        batch = next(iter(runtime.task.batches(inputs, runtime.preprocessing, 1))).batch
        rows = select_detections(np.asarray(runtime.predict(batch))[0], 0.3, 0.5, 100)
        ours[path.name] = [{"label": runtime.class_names[int(row[5])], "box": row[:4]} for row in rows]
    runner = Path(__file__).resolve().parent / "mediapipe_detect_runner.py"
    job = {"model": str(tflite), "images": [str(p) for p in paths], "score_threshold": 0.15}
    done = subprocess.run([str(require_mediapipe()), str(runner)], input=json.dumps(job), capture_output=True,
                          check=False, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = dict(zip((p.name for p in paths), json.loads(done.stdout)["detections"]))
    found, missed = [], set()
    for name, boxes in ours.items():
        for box in boxes:
            same = [item["box"] for item in theirs[name] if item["label"] == box["label"]]
            best = box_iou(np.array([as_mediapipe_reports(box["box"])]), np.array(same).reshape(-1, 4))
            found.append(bool(same) and best.max() >= 0.9)
            missed |= {name} if not found[-1] else set()
    figures = report["files"]["model.tflite"]
    assert figures["inputs"] == figures["answered"] == 7 and figures["boxes"] == len(found) >= 20
    assert figures["box_agreement"] == pytest.approx(np.mean(found))
    assert {Path(row["input"]).name for row in figures["disagreements"] if row["missed"]} == missed
    web = report["web"]["model.tflite"]
    assert web["boxes"] == figures["boxes"] and abs(web["box_agreement"] - figures["box_agreement"]) <= 2 / len(found)
    print(f"check-device: MediaPipe Python finds {figures['box_agreement']:.1%}, Chromium {web['box_agreement']:.1%} "
          f"of {figures['boxes']} boxes (IoU >= 0.9) on darknet's raw photos")
    record = json.loads((tflite.parent / "artifacts.json").read_text())["model.tflite"]
    assert record["mediapipe"]["box_agreement"] == figures["box_agreement"] and "parity" in record
    assert record["mediapipe_web"]["box_agreement"] == web["box_agreement"]
    assert "MediaPipe Web in Chromium finds" in output
    low = min(figures["box_agreement"], web["box_agreement"]) < 0.99
    assert (code == 1) == low and ("below --min-agreement 0.99" in output) == low


HAND_CHECKED = {"dog.jpg": [("dog", [124, 207, 313, 542]), ("bicycle", [111, 125, 564, 445]),
                            ("truck", [466, 76, 690, 170])],
                "person.jpg": [("person", [187, 112, 276, 375]), ("dog", [67, 262, 201, 348]),
                               ("horse", [398, 138, 602, 342])]}  # tests/models/test_detect.py's


def test_check_device_on_box_labels_scores_mediapipes_boxes_as_evaluate_does(photos, checked, tmp_path):
    """With COCO labels beside the photos, the report adds the mAP of the Keras model's boxes (as `dlpipe evaluate`
    scores them) and of MediaPipe's (this test's own ObjectDetector run, scored the same way)."""
    import subprocess

    from dlpipe.data.box_annotations import BoxLabel
    from dlpipe.models.coco_detector import COCO_LABELS
    from dlpipe.models.tasks.detect import DetectTask

    tflite, data = checked[0], coco_folder(photos, tmp_path / "labelled")
    out = tmp_path / "d.json"
    result = CliRunner().invoke(main, ["check-device", str(tflite), "--data", str(data), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mAP Keras" in result.output
    report = json.loads(out.read_text())
    figures = report["files"]["model.tflite"]
    assert report["labelled"] and figures["inputs"] == 2
    evaluated = tmp_path / "m.json"
    done = CliRunner().invoke(main, ["evaluate", "coco-detector", "--data", str(data), "--out", str(evaluated)],
                              catch_exceptions=False)
    assert done.exit_code == 0, done.output
    keras = json.loads(evaluated.read_text())
    assert figures["keras_map"] == pytest.approx(keras["map"]) and figures["keras_ap50"] == pytest.approx(keras["ap50"])
    runner = Path(__file__).resolve().parent / "mediapipe_detect_runner.py"
    job = {"model": str(tflite), "images": [str(data / "images" / name) for name in HAND_CHECKED],
           "score_threshold": 0.0}
    ran = subprocess.run([str(require_mediapipe()), str(runner)], input=json.dumps(job), capture_output=True,
                         check=False, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    classes = list(COCO_LABELS)
    rows = [np.array([[*item["box"], item["score"], classes.index(item["label"])] for item in found], np.float32)
            for found in json.loads(ran.stdout)["detections"]]
    truth = [[BoxLabel(label, tuple(map(float, box))) for label, box in HAND_CHECKED[name]] for name in HAND_CHECKED]
    mediapipe = DetectTask().score(truth, rows, classes)
    print(f"mAP on the hand-checked boxes: Keras {keras['map']:.3f}, MediaPipe {mediapipe['map']:.3f}; AP50 "
          f"{keras['ap50']:.3f}, {mediapipe['ap50']:.3f}")
    assert figures["mediapipe_map"] == pytest.approx(mediapipe["map"])
    assert figures["mediapipe_ap50"] == pytest.approx(mediapipe["ap50"]) and mediapipe["ap50"] >= keras["ap50"] - 0.1


def coco_folder(photos: Path, folder: Path) -> Path:
    """HAND_CHECKED as a COCO instances folder: annotations.json and images/."""
    (folder / "images").mkdir(parents=True)
    names = sorted({label for boxes in HAND_CHECKED.values() for label, _ in boxes})
    images, annotations = [], []
    for image_id, (name, boxes) in enumerate(HAND_CHECKED.items(), start=1):
        shutil.copy(photos / name, folder / "images" / name)
        with Image.open(photos / name) as image:
            images.append({"id": image_id, "file_name": name, "width": image.width, "height": image.height})
        annotations += [{"id": len(annotations) + index + 1, "image_id": image_id, "iscrowd": 0,
                         "category_id": names.index(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1]}
                        for index, (label, (x1, y1, x2, y2)) in enumerate(boxes)]
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(names)]
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                         "categories": categories}))
    return folder


def test_mediapipe_sampling_makes_dlpipes_boxes_mediapipes_on_raw_photos(photos, checked):
    """DetectPreprocessing(sampling="mediapipe") stretches as MediaPipe does, in TensorFlow and in NumPy alike, and
    the .tflite's boxes from those pixels are MediaPipe's own on the raw photos (antialiased pixels: fewer)."""
    import subprocess

    import tensorflow as tf

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks.detect import DetectPreprocessing, select_detections

    tflite = checked[0]
    runtime = load_runtime(tflite)  # LiteRT
    paths = sorted(photos.glob("*.jpg"))
    runner = Path(__file__).resolve().parent / "mediapipe_detect_runner.py"
    job = {"model": str(tflite), "images": [str(p) for p in paths], "score_threshold": 0.15}
    ran = subprocess.run([str(require_mediapipe()), str(runner)], input=json.dumps(job), capture_output=True,
                         check=False, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    theirs = json.loads(ran.stdout)["detections"]
    found = {}
    for sampling in ("antialias", "mediapipe"):
        prep, hits = DetectPreprocessing(image_size=512, sampling=sampling), []
        for path, boxes in zip(paths, theirs):
            inputs = runtime.task.numpy_input(path.read_bytes(), prep)
            graph = runtime.task.input_from_bytes(tf.io.read_file(str(path)), prep)["pixels"].numpy()
            assert np.abs(graph - inputs["pixels"]).max() < 0.05  # the TensorFlow and NumPy paths agree
            batch = {"pixels": inputs["pixels"][None].astype(np.float32), "sizes": inputs["sizes"][None]}
            for row in select_detections(np.asarray(runtime.predict(batch))[0], 0.3, 0.5, 100):  # as predict, unrounded
                same = [item["box"] for item in boxes if item["label"] == runtime.class_names[int(row[5])]]
                iou = box_iou(np.array([as_mediapipe_reports(row[:4])]), np.array(same).reshape(-1, 4))
                hits.append(bool(same) and iou.max() >= 0.9)
        found[sampling] = np.mean(hits)
    print(f"MediaPipe Python finds {found['mediapipe']:.1%} of LiteRT's boxes from MediaPipe-sampled pixels, "
          f"{found['antialias']:.1%} from antialiased ones")
    assert found["mediapipe"] >= 0.9 and found["mediapipe"] > found["antialias"] + 0.1
