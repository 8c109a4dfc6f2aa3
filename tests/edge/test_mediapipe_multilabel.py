"""A multi-label .tflite in the real MediaPipe ImageClassifier names the labels `dlpipe predict` names.

The per-label thresholds are folded into the model and its metadata holds a 0.5 score threshold, so
MediaPipe, left at its defaults, returns exactly the labels that are on. Photos are written at the model's
input size (32 px), which MediaPipe leaves as it is, so both see the same pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from dlpipe.pipelines.cli import main
from e2e.test_multilabel_run import SETS, scene, write_scenes
from edge.mediapipe_env import require_mediapipe, run_mediapipe


def test_mediapipe_names_every_label_above_threshold_as_dlpipe_predict_does(tmp_path):
    require_mediapipe()
    labels = write_scenes(tmp_path / "scenes")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "image-multilabel", "--data", str(labels), "--out", str(out),
                                       *[arg for s in SETS for arg in ("--set", s)]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    photos = []
    for index in range(24):
        path = tmp_path / "photos" / f"p{index}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(scene(bool(index % 2), bool((index // 2) % 2), 500 + index, size=32)).save(path)
        photos.append(path)
    rows_file = tmp_path / "rows.jsonl"
    predicted = CliRunner().invoke(main, ["predict", str(out / "model.tflite"), *map(str, photos), "--out", str(rows_file)],
                                   catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    ours = {Path(row["input"]).name: set(row["labels"]) for row in map(json.loads, rows_file.read_text().splitlines())}
    answer = run_mediapipe({"image": [{"model": str(out / "model.tflite"), "images": list(map(str, photos))}]})
    theirs = {photo.name: {c["category_name"] for c in categories}
              for photo, categories in zip(photos, answer["image"][0])}
    assert theirs == ours
    truth = {p.name: {n for n, on in (("red", i % 2), ("blue", (i // 2) % 2)) if on} for i, p in enumerate(photos)}
    assert sum(ours[name] == truth[name] for name in truth) >= 18  # mostly right: chance names the exact set 1 in 4
