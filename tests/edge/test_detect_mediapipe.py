"""The detect task's files in MediaPipe's ObjectDetector: the `web` page in headless Chromium, on coco-detector's
.tflite and darknet's sample photos.

Needs the converted detector (scripts/fetch_coco_detector.sh), darknet's photos (Debian `darknet`), chromium and
MediaPipe's web files, all from scripts/setup.sh (a failure under CI when missing).

MediaPipe stretches a photo to 512x512 by plain bilinear sampling; dlpipe's detect preprocessing antialiases. To
compare the runtimes on the same pixels, the page gets each photo as dlpipe prepares it, enlarged 4x by repeating
pixels: MediaPipe's sampling (source pixel 4x for output pixel x) then hands the model exactly dlpipe's pixels,
and its whole-pixel boxes are 4x finer. On the raw photos the agreement is what check-device measures.
"""

from __future__ import annotations

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


def require_browser() -> str:
    from dlpipe.models.export.web import vendor_root

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    require(vendor_root().is_dir(), f"MediaPipe Tasks web files ({vendor_root()})",
            "scripts/setup.sh runs npm install --prefix .web-vendor @mediapipe/tasks-vision @mediapipe/tasks-text")
    return str(chromium)


def exported(fmt: str, photos: Path, out: Path) -> Path:
    result = CliRunner().invoke(main, ["export", "coco-detector", "--format", fmt, "--out", str(out),
                                       "--sample", str(photos / "dog.jpg")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def as_mediapipe_reports(box: list[float]) -> list[int]:
    """MediaPipe's BoundingBox: origin and size in whole pixels (truncated)."""
    x1, y1 = math.floor(box[0]), math.floor(box[1])
    return [x1, y1, x1 + math.floor(box[2] - box[0]), y1 + math.floor(box[3] - box[1])]


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
