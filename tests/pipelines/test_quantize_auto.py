"""`dlpipe export RUN --quantize auto --max-drop`: candidates scored on held-out data, the smallest within budget ships."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_color_images

# every quantization candidate converted and scored: bench/long_checks.py runs it, not the 10-minute suite
pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def auto_run(trained_run, tmp_path_factory):
    """A copy of the session's tiny red/blue run (not refitted: a from-scratch CNN; the exports below write into
    it) and 32 photos it never saw."""
    import shutil

    out = Path(shutil.copytree(trained_run[1], tmp_path_factory.mktemp("auto") / "out"))
    held_out = tmp_path_factory.mktemp("held-out")
    write_color_images(held_out / "blue", "blue", 16, seed=12)
    write_color_images(held_out / "red", "red", 16, seed=11)
    return out, held_out


def _export(*args: str):
    from dlpipe.pipelines.cli import main

    return CliRunner().invoke(main, ["export", *args])


def test_auto_ships_the_smallest_candidate_within_budget_and_the_table_is_real(auto_run, tmp_path):
    from dlpipe.pipelines.evaluation import evaluate_artifact

    out, held_out = auto_run
    before = {path.name for path in out.iterdir()}
    killed = out / ".quantize-auto" / "999999999"  # what an export killed midway left (no such process)
    killed.mkdir(parents=True)
    (killed / "model.tflite").write_bytes(b"partial")
    keep = tmp_path / "candidates"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")  # a folder given to --keep-candidates keeps what it held
    result = _export(str(out), "--quantize", "auto", "--max-drop", "1.0", "--eval-data", str(held_out),
                     "--keep-candidates", str(keep))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "artifacts.json").read_text())
    shipped = [name for name, record in manifest.items() if "quantize_auto" in record]
    assert len(shipped) == 1
    record = manifest[shipped[0]]["quantize_auto"]
    assert record["eval_count"] == 32 and record["metric"] == "accuracy"
    rows = {row["name"]: row for row in record["candidates"]}
    assert list(rows) == ["float32", "float16", "dynamic", "int8", "int8-mixed"]
    for name, row in rows.items():
        assert name in result.output and row["verdict"] in result.output  # the console lists every candidate
        path = keep / name / row["file"]
        assert path.stat().st_size == row["size_bytes"]
        # the score is recomputed here from the written file with dlpipe's runtime on the held-out photos
        assert evaluate_artifact(path, held_out)["accuracy"] * 100 == pytest.approx(row["score"], abs=1e-9)
        assert row["drop"] == pytest.approx(rows["float32"]["score"] - row["score"])
        assert row["ms_per_input"] > 0
    assert rows["float32"]["score"] > 75  # a trained model: the comparison means something
    within = [row for row in rows.values() if row["drop"] <= 1.0]
    chosen = rows[record["chosen"]]
    assert chosen["size_bytes"] == min(row["size_bytes"] for row in within)
    assert chosen["verdict"] == "chosen"
    assert (out / shipped[0]).read_bytes() == (keep / record["chosen"] / chosen["file"]).read_bytes()
    assert rows["int8"]["size_bytes"] < rows["float32"]["size_bytes"] / 2  # int8 really is smaller
    assert before <= {path.name for path in out.iterdir()}  # no file of the run is lost
    assert not (out / ".quantize-auto").exists()
    assert (keep / "notes.txt").read_text() == "mine"


def test_a_refitted_model_without_eval_data_gets_a_one_line_error(auto_run, tmp_path):
    import shutil

    out, _ = auto_run
    refitted = tmp_path / "refitted"
    shutil.copytree(out, refitted)
    metrics = json.loads((refitted / "metrics.json").read_text())
    metrics["refit"] = {"examples": 48, "epochs": {"train": 12}}  # what a run that refits records
    (refitted / "metrics.json").write_text(json.dumps(metrics))
    before = sorted(path.name for path in refitted.iterdir())
    result = _export(str(refitted), "--quantize", "auto")
    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "refitted" in result.output and "--eval-data" in result.output
    assert sorted(path.name for path in refitted.iterdir()) == before  # nothing written


def test_a_model_not_refitted_is_scored_on_its_validation_split_by_default(auto_run, tmp_path):
    out, _ = auto_run
    assert not json.loads((out / "metrics.json").read_text()).get("refit")
    result = _export(str(out), "--quantize", "auto", "--out", str(tmp_path / "export"), "--prefer", "speed")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "export" / "artifacts.json").read_text())
    record = next(record["quantize_auto"] for record in manifest.values() if "quantize_auto" in record)
    validation = json.loads((out / "metrics.json").read_text())["count"]
    assert record["eval_count"] == validation and "validation split" in record["eval_data"]
    rows = {row["name"]: row for row in record["candidates"]}
    within = [row for row in rows.values() if row["drop"] is not None and row["drop"] <= 1.0]
    assert rows[record["chosen"]]["ms_per_input"] == min(row["ms_per_input"] for row in within)  # --prefer speed


def _near_ties(float32_file: Path, folder: Path, pairs: int = 32) -> None:
    """Photos on the float32 file's decision boundary, labelled with its own answers (so it scores 100%).

    Each starts as a red photo turning into a blue one a pixel (then a level of one pixel) at a time; a bisection
    finds two images one level apart that the float32 file answers differently, so its margin there is tiny and
    any other weights (float16 included) answer some of them the other way.
    """
    import numpy as np
    from dlpipe.models.runtimes import load_runtime
    from PIL import Image

    runtime = load_runtime(float32_file)
    rng = np.random.default_rng(5)
    scratch = folder.parent / "bisection"
    scratch.mkdir()

    def answers(images: list) -> list:
        from dlpipe.models.tasks import InputSet

        inputs = InputSet()
        for index, image in enumerate(images):
            path = scratch / f"{index}.png"
            Image.fromarray(image).save(path)
            inputs.add(str(path), str(path))
        batch = next(iter(runtime.task.batches(inputs, runtime.preprocessing, len(images)))).batch
        return [runtime.class_names[i] for i in runtime.predict(batch).argmax(axis=1)]

    def blend(red, blue, order, step):
        pixel, level = divmod(step, 256)
        image = red.copy().reshape(-1, 3)
        image[order[:pixel]] = blue.reshape(-1, 3)[order[:pixel]]
        if pixel < len(order):
            mixed = (red.reshape(-1, 3)[order[pixel]].astype(int) * (256 - level)
                     + blue.reshape(-1, 3)[order[pixel]].astype(int) * level)
            image[order[pixel]] = (mixed / 256).astype(np.uint8)
        return image.reshape(red.shape)

    def answered(hue: str, shift: list) -> list:  # the file's own reds (blues): each path needs both ends right
        drawn = [np.clip(rng.integers(0, 110, (32, 32, 3)) + shift, 0, 255).astype(np.uint8) for _ in range(2 * pairs)]
        kept = [image for image, answer in zip(drawn, answers(drawn)) if answer == hue]
        assert len(kept) >= pairs, f"the tiny model calls only {len(kept)} of {2 * pairs} {hue} photos {hue}"
        return kept[:pairs]

    reds, blues = answered("red", [120, 0, 0]), answered("blue", [0, 0, 120])
    orders = [rng.permutation(32 * 32) for _ in range(pairs)]
    low, high = [0] * pairs, [32 * 32 * 256] * pairs
    while any(h - lo > 1 for lo, h in zip(low, high)):
        middle = [(lo + h) // 2 for lo, h in zip(low, high)]
        said = answers([blend(r, b, o, m) for r, b, o, m in zip(reds, blues, orders, middle)])
        for i, answer in enumerate(said):
            if answer == "red":
                low[i] = middle[i]
            else:
                high[i] = middle[i]
    images = [blend(r, b, o, lo if i % 2 else hi) for i, (r, b, o, lo, hi)
              in enumerate(zip(reds, blues, orders, low, high))]
    for index, (image, answer) in enumerate(zip(images, answers(images))):
        (folder / answer).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / answer / f"tie_{index:02d}.png")


def test_a_budget_no_candidate_meets_keeps_float32_and_says_why(auto_run, tmp_path):
    out, _ = auto_run
    reference = tmp_path / "reference"
    assert _export(str(out), "--out", str(reference)).exit_code == 0  # the float32 .tflite the ties are found on
    ties = tmp_path / "ties"
    _near_ties(reference / "model.tflite", ties)
    result = _export(str(out), "--quantize", "auto", "--max-drop", "0", "--eval-data", str(ties), "--out",
                     str(tmp_path / "auto"))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "auto" / "artifacts.json").read_text())["model.tflite"]["quantize_auto"]
    rows = {row["name"]: row for row in record["candidates"]}
    assert record["chosen"] == "float32" and rows["float32"]["score"] == 100.0
    assert rows["float32"]["verdict"] == "chosen: no other candidate is within the budget"
    for name in ("float16", "dynamic", "int8", "int8-mixed"):
        assert rows[name]["drop"] > 0 and rows[name]["verdict"].startswith("rejected: over budget"), rows[name]
    assert "chose float32" in result.output and "over budget" in result.output
