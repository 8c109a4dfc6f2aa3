"""train.distribute for the tasks of the shared train stage: detect, segment and image-multilabel each train under
`mirrored` (on this CPU one replica, through the whole strategy path: built, compiled and fitted in its scope, then
copied out of it) and export as usual. image-classify (also on two workers and on Ray), points and the GAN:
test_distribute.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SETS
from helpers_boxes import write_box_dataset
from dlpipe.pipelines import api

pytestmark = pytest.mark.long  # three tasks trained under a strategy: bench/long_checks.py, not the 10-minute suite

MIRRORED = ["train.distribute=mirrored", "train.progress=none"]


def run(pipeline: str, data: Path, out: Path, sets: list[str]):
    return api.run(pipeline, data=str(data), out=out, sets=[*sets, *MIRRORED], echo=lambda _: None)


def losses(out: Path, phase: str = "train") -> list[float]:
    with open(out / f"history_{phase}.csv", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def keras_parity(out: Path) -> dict:
    """The exported model.keras, loaded back and checked against the trained model by the export stage: its parity."""
    from dlpipe.models.artifacts import read_record

    assert "distribute: mirrored" in (out / "config.yaml").read_text()
    parity = read_record(out / "model.keras")["parity"]
    assert parity["count"] > 0, parity
    return parity


def test_detect_trains_and_exports_under_mirrored(tmp_path):
    write_box_dataset(tmp_path / "coco", "coco", n_photos=16, size=64, seed=0)
    run("detect", tmp_path / "coco", tmp_path / "out", [
        "model.encoder=small", "model.weights=none", "model.image_size=64", "model.neck_filters=[16,16,8]",
        "model.head_filters=8", "train.epochs=3", "train.finetune_epochs=0", "train.batch_size=4",
        "train.learning_rate=0.005", "train.tensorboard=false", "train.early_stopping_patience=0",
        "preprocess.mosaic=0", "evaluate.bootstrap=20", "export.parity_sample=4", "export.formats=[keras]"])
    loss = losses(tmp_path / "out")
    assert loss[-1] < 0.85 * loss[0], loss  # measured: 9.1, 6.8, 5.7
    keras_parity(tmp_path / "out")


def write_squares(root: Path, count: int = 12, seed: int = 0) -> Path:
    """Noise photos with a red square: class 1 in the masks, everything else background."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        photo = rng.integers(0, 120, (64, 64, 3)).astype(np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        top, left, side = (int(v) for v in rng.integers(4, 40, 3))
        mask[top:top + side // 2 + 8, left:left + side // 2 + 8] = 1
        photo[mask == 1] = [230, 40, 40]
        Image.fromarray(photo).save(root / "images" / f"s{index:02d}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"s{index:02d}.png")
    (root / "classes.txt").write_text("background\nsquare\n")
    return root


def test_segment_trains_and_exports_under_mirrored(tmp_path):
    run("segment", write_squares(tmp_path / "squares"), tmp_path / "out", [
        "model.encoder=small", "model.weights=none", "model.image_size=64", "model.decoder_filters=[16,16,8,8,8]",
        "train.epochs=3", "train.finetune_epochs=0", "train.batch_size=4", "train.learning_rate=0.005",
        "train.tensorboard=false", "train.early_stopping_patience=0", "evaluate.bootstrap=20",
        "export.parity_sample=4", "export.formats=[keras]"])
    loss = losses(tmp_path / "out")
    assert loss[-1] < 0.8 * loss[0], loss
    assert keras_parity(tmp_path / "out")["mask_iou"] == 1.0


def write_scenes(folder: Path, count: int = 32) -> Path:
    """Grey photos with a red square, a blue one, both or neither, and labels.csv naming each photo's set."""
    from PIL import Image

    folder.mkdir(parents=True)
    rows = ["path,labels"]
    rng = np.random.default_rng(0)
    for index in range(count):
        red, blue = bool(index % 2), bool((index // 2) % 2)
        pixels = np.clip(rng.normal(128, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
        for on, colour in ((red, (220, 30, 30)), (blue, (30, 30, 220))):
            if on:
                x, y = rng.integers(0, 20, 2)
                pixels[y:y + 12, x:x + 12] = colour
        Image.fromarray(pixels).save(folder / f"s{index}.png")
        rows.append(f"s{index}.png," + ";".join(name for name, on in (("red", red), ("blue", blue)) if on))
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def test_image_multilabel_trains_and_exports_under_mirrored(tmp_path):
    sets = [s for s in TINY_SETS if not s.startswith(("train.monitor=", "export.formats="))]
    run("image-multilabel", write_scenes(tmp_path / "scenes"), tmp_path / "out", [
        *sets, "train.monitor=val_auc", "train.epochs=4", "train.learning_rate=0.003", "augment.enabled=false",
        "evaluate.bootstrap=20", "export.formats=[keras]"])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["map"] >= 0.75, metrics  # chance: each label is on in half the photos, AP about 0.5
    assert keras_parity(tmp_path / "out")["decision_agreement"] >= 0.98
