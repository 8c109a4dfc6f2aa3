"""The "unknown" answer (evaluate.unknown): a red/blue model answers `unknown` for green and grey photos in dlpipe
predict (Keras and the float .tflite) and in MediaPipe's ImageClassifier, keeps new red/blue photos, and records
its threshold; evaluate.unknown=false leaves the model as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_SETS, write_color_images
from dlpipe.pipelines.cli import main

# antialias: this from-scratch CNN's pooled features of 32-48 px noise photos sit within 0.01 cosine of each other,
# and MediaPipe's sampling (no filter: the pixel noise stays) put 7 of the 8 green and grey photos inside the band
# that keeps 97% of red/blue ones once it became MediaPipe's exact fixed-point resize (91d7122); the filter averages
# the noise away (threshold 0.9995: all 8 unknown, 23 of 24 new red/blue photos kept). The test is of the mechanism
UNKNOWN_SETS = [*TINY_SETS, "export.formats=[keras,tflite]", "train.epochs=12", "train.learning_rate=0.003",
                "augment.enabled=false", "evaluate.unknown=true", "preprocess.sampling=antialias"]


@pytest.fixture(scope="module")
def unknown_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(run folder, 6 green + 2 grey photos, 12 new red + 12 new blue photos)."""
    from dlpipe.pipelines import api

    root = tmp_path_factory.mktemp("unknown")
    write_color_images(root / "train" / "blue", "blue", 24, seed=2)
    write_color_images(root / "train" / "red", "red", 24, seed=1)
    api.run("image-classify", data=str(root / "train"), out=root / "run", sets=UNKNOWN_SETS, echo=lambda _: None)
    write_color_images(root / "other", "green", 6, seed=3)
    for shade in (90, 170):
        pixels = np.random.default_rng(shade).integers(-20, 21, size=(40, 40, 3)) + shade
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "other" / f"grey_{shade}.png")
    write_color_images(root / "held" / "blue", "blue", 12, seed=12)
    write_color_images(root / "held" / "red", "red", 12, seed=11)
    return root / "run", root / "other", root / "held"


def predicted(run: Path, folder: Path, artifact: str, out: Path) -> dict[str, str]:
    answer = CliRunner().invoke(main, ["predict", str(run), str(folder), "--artifact", artifact, "--top-k", "1",
                                       "--out", str(out)], catch_exceptions=False)
    assert answer.exit_code == 0, answer.output
    return {Path(row["input"]).name: row["label"] for row in map(json.loads, out.read_text().splitlines())}


def test_threshold_is_recorded_and_in_the_labels(unknown_run):
    run, _, _ = unknown_run
    record = json.loads((run / "metrics.json").read_text())["unknown"]
    assert record["label"] == "unknown" and record["keep_target"] == 0.97
    assert record["count"] == 10 and record["kept"] >= 0.97  # the validation photos it was chosen on
    assert 0 < record["threshold"] < 1 and "validation photos" in record["source"]
    assert (run / "labels.txt").read_text().split() == ["blue", "red", "unknown"]
    assert f"is below {record['threshold']:.4f}" in (run / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("artifact", ["keras", "float32"])
def test_other_colours_are_unknown_and_new_red_blue_photos_are_kept(unknown_run, artifact, tmp_path):
    run, other, held = unknown_run
    assert set(predicted(run, other, artifact, tmp_path / "other.jsonl").values()) == {"unknown"}
    answers = predicted(run, held, artifact, tmp_path / "held.jsonl")
    kept = [name for name, label in answers.items() if label != "unknown"]
    assert len(kept) >= 20  # 24 photos; a threshold chosen on 10 to keep 97% keeps most new ones
    assert all(answers[name] == name.split("_")[0] for name in kept)  # and those keep their answers


def test_mediapipe_answers_unknown_from_the_tflite(unknown_run):
    from edge.mediapipe_env import require_mediapipe, run_mediapipe

    require_mediapipe()
    run, other, held = unknown_run
    photos = sorted(other.iterdir()) + sorted((held / "red").iterdir())[:3]
    answer = run_mediapipe({"image": [{"model": str(run / "model.tflite"), "images": [str(p) for p in photos]}]})
    top = [max(categories, key=lambda c: c["score"])["category_name"] for categories in answer["image"][0]]
    assert top == ["unknown"] * 8 + ["red"] * 3


def test_false_ships_the_plain_classifier(tmp_path):
    from dlpipe.pipelines import api

    write_color_images(tmp_path / "data" / "blue", "blue", 12, seed=2)
    write_color_images(tmp_path / "data" / "red", "red", 12, seed=1)
    sets = [*TINY_SETS, "train.epochs=1", "export.formats=[keras]", "evaluate.unknown=false", "evaluate.plots=false"]
    api.run("image-classify", data=str(tmp_path / "data"), out=tmp_path / "run", sets=sets, echo=lambda _: None)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["unknown"] is None
    assert (tmp_path / "run" / "labels.txt").read_text().split() == ["blue", "red"]


def test_evaluate_counts_unknown_answers_wrong_and_keeps_the_classes_macro_f1(unknown_run, tmp_path):
    run, other, held = unknown_run
    mixed = tmp_path / "mixed"
    shutil.copytree(held, mixed)
    for photo in sorted(other.glob("green_*"))[:3]:  # outlier photos labelled red: each should be answered unknown
        shutil.copy(photo, mixed / "red" / photo.name)
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data", str(mixed), "--artifact", "keras"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answers = predicted(run, mixed, "keras", tmp_path / "rows.jsonl")
    unknown = sum(label == "unknown" for label in answers.values())
    assert unknown >= 3 and f"answered unknown: {unknown} of 27 (counted wrong)" in result.output
    assert "unknown: precision" not in result.output  # the classes' macro F1, not a zero for a class nobody has


def test_serve_answers_unknown_as_predict_does(unknown_run, tmp_path):
    import base64

    from fastapi.testclient import TestClient

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app

    run, other, held = unknown_run
    repository = ModelRepository(run, "float32")
    name = repository.models()[0].name
    photos = sorted(other.iterdir())[:2] + sorted((held / "blue").iterdir())[:3] + sorted((held / "red").iterdir())[:3]
    body = {"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in photos]}
    with TestClient(create_app(repository, ServerSettings())) as client:
        answer = client.post(f"/v1/models/{name}:predict", json=body)
    assert answer.status_code == 200, answer.text
    served = [row["label"] for row in answer.json()["predictions"]]
    ours = {**predicted(run, other, "float32", tmp_path / "o.jsonl"),
            **predicted(run, held, "float32", tmp_path / "h.jsonl")}
    assert served == [ours[p.name] for p in photos] and served[:2] == ["unknown", "unknown"]
    assert {"blue", "red"} <= set(served[2:])


def test_a_frozen_backbone_chooses_the_threshold_out_of_fold_from_the_cached_features(tmp_path):
    import keras

    from dlpipe.models.small_cnn import small_cnn
    from dlpipe.pipelines import api

    weights = tmp_path / "frozen.weights.h5"  # a fixed (random) backbone stands in for pretrained weights
    keras.utils.set_random_seed(0)
    small_cnn((32, 32, 3)).save_weights(weights)
    write_color_images(tmp_path / "data" / "blue", "blue", 24, seed=2)
    write_color_images(tmp_path / "data" / "red", "red", 24, seed=1)
    api.run("image-classify", data=str(tmp_path / "data"), out=tmp_path / "run", echo=lambda _: None,
            sets=[*TINY_SETS, f"model.weights={weights}", "model.mode=probe", "train.refit=true",
                  "export.formats=[keras]", "evaluate.unknown=true", "evaluate.plots=false"])
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())["unknown"]
    assert record["count"] == record["means_of"] == 48 and "out-of-fold" in record["source"]
    assert record["kept"] >= 0.97
    from dlpipe.models.artifacts import load_keras
    from dlpipe.models.unknown import class_means

    (cache,) = (tmp_path / "run" / "features").glob("*.npz")  # the train stage's features, which the gate reads
    with np.load(cache) as stored:  # all 48 photos (the refit trained on every one), blue = class 0
        keys, features = [str(key) for key in stored["keys"]], stored["features"]
    assert len(keys) == 48
    gate = load_keras(tmp_path / "run" / "model.keras").get_layer("unknown_gate")
    expected = class_means(features, [0 if "/blue/" in key else 1 for key in keys])
    np.testing.assert_allclose(gate.means.numpy().T, expected, atol=1e-5)


def test_a_refitted_trained_backbone_chooses_the_threshold_on_validation_before_the_refit(tmp_path):
    from dlpipe.pipelines import api

    write_color_images(tmp_path / "data" / "blue", "blue", 24, seed=2)
    write_color_images(tmp_path / "data" / "red", "red", 24, seed=1)
    sets = [*TINY_SETS, "train.epochs=3", "train.refit=true", "export.formats=[keras]", "evaluate.unknown=true",
            "evaluate.plots=false"]
    api.run("image-classify", data=str(tmp_path / "data"), out=tmp_path / "run", sets=sets, echo=lambda _: None)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())["unknown"]
    assert record["count"] == 10 and record["means_of"] == 48  # held out: validation; means: every photo
    assert "before the refit" in record["source"] and record["kept"] >= 0.97
