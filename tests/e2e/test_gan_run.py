"""`dlpipe run gan` on builtin:digits: the generator ships as the gan task's artifacts, and every consumer runs it.

One tiny run (8x8 digits, one epoch) exports model.keras, savedmodel/ and model.tflite with the side files
every task's artifacts have; `dlpipe predict`, `dlpipe generate` and the server then answer seeds with
generated images, the same seed giving the same image.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from dlpipe.models import artifacts
from dlpipe.models.tasks.gan import latent_vectors, to_pixels
from dlpipe.pipelines.cli import main
from helpers_card import assert_card_states_the_run
from PIL import Image

SETTINGS = ["load.limit=300", "model.latent_dim=16", "model.filters=8", "train.epochs=1", "train.batch_size=32",
            "train.feature_epochs=1", "train.fid_samples=30", "train.progress=none", "export.samples=16",
            "export.parity_sample=8", "export.formats=[keras,savedmodel,tflite]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    result = CliRunner().invoke(main, ["run", "gan", "--data", "builtin:digits", "--out", str(out),
                                       *[f"--set={s}" for s in SETTINGS]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def keras_images(run):
    """What the trained generator itself makes of seeds 0 .. 5, as uint8 pixels."""
    generator = artifacts.load_keras(run / "model.keras")
    return to_pixels(generator.predict(latent_vectors(range(6), 16), verbose=0))


def png(path_or_bytes) -> np.ndarray:
    with Image.open(path_or_bytes if not isinstance(path_or_bytes, bytes) else io.BytesIO(path_or_bytes)) as image:
        return np.asarray(image)


def test_the_run_exports_the_generator_with_the_bundle_of_every_task(run, keras_images):
    generator = artifacts.load_keras(run / "model.keras")
    assert generator.input_shape == (None, 16) and generator.output_shape == (None, 8, 8, 1)
    for artifact in (run / "model.keras", run / "savedmodel", run / "model.tflite"):
        side = artifacts.read_side_files(artifact)
        assert side.task == "gan" and side.class_names == [str(d) for d in range(10)], artifact
        assert side.preprocessing["latent_dim"] == 16
        parity = artifacts.read_record(artifact)["parity"]
        assert parity["count"] == 8 and isinstance(parity["max_abs_diff"], float), artifact  # measured, not assumed
        assert parity["max_abs_diff"] < 1e-4 and parity["top1_agreement"] == 1.0, (artifact, parity)
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["fid_per_epoch"]) == 1 and metrics["fid_per_epoch"][0] > metrics["fid_floor_real_vs_real"]
    # the shared history and resume: one CSV per phase at the top, the backup under checkpoints/
    assert (run / "history_gan.csv").read_text().splitlines()[0].startswith("epoch")
    assert (run / "checkpoints" / "backup_gan").is_dir()
    grid = png(run / "samples.png")  # seeds 0.. in 8 columns, tiles 8 px with 2 px between, shown at twice the size
    np.testing.assert_array_equal(grid[4:20:2, 4:20:2], keras_images[0, ..., 0])
    page = (run / "report.html").read_text(encoding="utf-8")  # the run's page: its samples and artifacts, no gallery
    assert "generated samples" in page and "<td>model.tflite</td>" in page and "<h2>Worst" not in page


def test_predict_generates_a_png_per_seed_and_the_same_seed_gives_the_same_image(run, keras_images, tmp_path):
    shown = CliRunner().invoke(main, ["predict", str(run), "0", "1"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if "image, mean pixel" in line]
    assert [line.split(":")[0] for line in lines] == ["0", "1"] and "seed 1: 8x8x1 image" in lines[1]
    for artifact, folder in (("keras", "a"), ("keras", "b"), ("float32", "c"), ("savedmodel", "d")):
        result = CliRunner().invoke(main, ["predict", str(run), "1", "0", "--artifact", artifact,
                                           "--out", str(tmp_path / folder)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / folder / "images.jsonl").read_text().splitlines()]
        assert [row["seed"] for row in rows] == [1, 0] and rows[0]["image"] == str(tmp_path / folder / "seed_1.png")
        for seed in (0, 1):
            image = png(tmp_path / folder / f"seed_{seed}.png")
            assert image.shape == (8, 8) and image.dtype == np.uint8
            # every artifact makes the Keras generator's image of that seed (within one grey level)
            assert np.abs(image.astype(int) - keras_images[seed, ..., 0]).max() <= 1, (artifact, seed)
    np.testing.assert_array_equal(png(tmp_path / "a" / "seed_0.png"), png(tmp_path / "b" / "seed_0.png"))
    assert not np.array_equal(png(tmp_path / "a" / "seed_0.png"), png(tmp_path / "a" / "seed_1.png"))


def test_generate_draws_the_images_predict_draws(run, keras_images, tmp_path):
    result = CliRunner().invoke(main, ["generate", str(run), "--n", "4", "--seed", "2", "--columns", "2",
                                       "--artifact", "keras", "--out", str(tmp_path / "g.png")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    grid = png(tmp_path / "g.png")
    assert grid.shape == ((2 * 10 + 2) * 2, (2 * 10 + 2) * 2)
    np.testing.assert_array_equal(grid[4:20:2, 24:40:2], keras_images[3, ..., 0])  # row 0, column 1: seed 3


def test_the_server_answers_seeds_with_generated_images(run, keras_images):
    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(ModelRepository(run))) as client:
        answer = client.post("/v1/models/run:predict", json={"instances": [5, 0]})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["shape"] for p in predictions] == [[8, 8, 1], [8, 8, 1]]
        for seed, prediction in zip((5, 0), predictions):
            image = png(base64.b64decode(prediction["image_png"]["b64"]))
            assert np.abs(image.astype(int) - keras_images[seed, ..., 0]).max() <= 1
        bad = client.post("/v1/models/run:predict", json={"instances": ["five"]})
        assert bad.status_code == 400 and "takes seeds" in bad.json()["error"]


def test_evaluation_and_int8_are_refused_in_one_line_and_a_reexport_is_checked(run, tmp_path):
    evaluated = CliRunner().invoke(main, ["evaluate", str(run), "--data", "builtin:digits"])
    assert evaluated.exit_code == 2 and "no labelled evaluation" in evaluated.output
    int8 = CliRunner().invoke(main, ["export", str(run), "--format", "tflite", "--quantize", "int8",
                                     "--out", str(tmp_path)])
    assert int8.exit_code == 2 and "Gaussian latent" in int8.output
    again = CliRunner().invoke(main, ["export", str(run), "--format", "tflite", "--quantize", "float16",
                                      "--out", str(tmp_path)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    parity = artifacts.read_record(tmp_path / "model_float16.tflite")["parity"]
    assert parity["count"] == 100 and parity["max_abs_diff"] < 0.05  # the run's load stage gave the seeds again


def test_the_model_card_states_the_frechet_distance_and_its_floor(run):
    metrics = json.loads((run / "metrics.json").read_text())
    lines = [f"{metrics['fid_per_epoch'][-1]:.3f} after the last epoch",
             f"two disjoint halves of real images score {metrics['fid_floor_real_vs_real']:.3f}"]
    assert_card_states_the_run(run, lines, "max_pixel_diff", digits=0)
