"""`dlpipe run image-multilabel --set model.backbone=centernet_coco`: labels read off a detector's heat map.

The generated red/blue-square scenes of test_multilabel_run.py, from their COCO file (boxes), at 64 px: the COCO
CenterNet learns the squares' heat map and boxes, a label's score is its highest peak, and every export decides
as the Keras model does. Needs the COCO detector (scripts/fetch_coco_detector.sh, run by scripts/setup.sh).
"""

from __future__ import annotations

import json
import re

import pytest
from assets import require
from click.testing import CliRunner
from dlpipe.pipelines.cli import main
from test_multilabel_run import write_scenes

SETS = ["model.backbone=centernet_coco", "model.image_size=64", "train.epochs=2", "train.finetune_epochs=6",
        "train.tensorboard=false", "train.progress=none", "evaluate.bootstrap=100", "evaluate.plots=false",
        "export.formats=[keras,tflite]", "export.parity_sample=24"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from dlpipe.models import centernet_port

    reason = centernet_port.missing_reason()
    require(not reason, "COCO detector's TF.js graph (coco-detector)", reason or "")
    return write_scenes(tmp_path_factory.mktemp("scenes") / "scenes", count=48)


def run(data, out, *sets):
    args = ["run", "image-multilabel", "--data", str(data), "--out", str(out)]
    return CliRunner().invoke(main, args + [arg for s in [*SETS, *sets] for arg in ("--set", s)])


@pytest.fixture(scope="module")
def finished(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return out, run(scenes.parent / "annotations.json", out)


@pytest.mark.long  # about 80 s of training and export on 2 cores
def test_the_heat_map_head_learns_the_squares_and_every_export_decides_alike(finished, scenes):
    out, result = finished
    assert result.exit_code == 0, result.output
    assert "each scored by its highest heat-map peak" in result.output and "recipe centernet_coco" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # chance: each label is on in half the photos (AP about 0.5); measured mAP 0.983, micro-F1 0.952 once
    assert metrics["map"] >= 0.9 and metrics["micro_f1"] >= 0.85, metrics
    artifacts = json.loads((out / "artifacts.json").read_text())
    assert artifacts["model.tflite"]["parity"]["decision_agreement"] >= 0.95, artifacts["model.tflite"]
    predicted = CliRunner().invoke(main, ["predict", str(out), str(scenes.parent / "s3.png")])  # red and blue
    answer = re.search(r"s3\.png: \{([^}]*)\}", predicted.output)
    assert predicted.exit_code == 0 and answer and set(answer.group(1).split(", ")) == {"red", "blue"}, predicted.output


def test_labels_without_boxes_get_one_line_naming_the_fix(scenes, tmp_path):
    result = run(scenes, tmp_path / "out")
    assert result.exit_code != 0
    assert "learns from boxes: give a COCO annotations JSON" in result.output and "Traceback" not in result.output


def test_a_refit_is_refused_naming_the_option(scenes, tmp_path):
    result = run(scenes.parent / "annotations.json", tmp_path / "out", "train.refit=true")
    assert result.exit_code != 0 and "train.refit" in result.output and "Traceback" not in result.output


def test_an_image_size_the_detector_cannot_take_is_refused_naming_the_option(scenes, tmp_path):
    result = run(scenes.parent / "annotations.json", tmp_path / "out", "model.image_size=100")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "model.image_size" in result.output and "multiple of 32" in result.output, result.output
