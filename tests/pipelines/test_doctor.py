"""dlpipe doctor finds planted problems in a tiny colour folder, and its CSV keeps them out of a run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from conftest import TINY_SETS, write_color_images

# the features the doctor uses in these tests: the tiny runs' random small CNN, which still separates red from blue
FEATURE_SETS = ["model.backbone=small_cnn", "model.weights=none", "model.image_size=32"]


@pytest.fixture
def planted_folder(tmp_path: Path) -> dict[str, Path]:
    """24 blue, 24 red; a red photo moved into blue/ (named like markup), a blue photo copied within blue/, a
    red photo copied into blue/ (the same photo in both classes) and a corrupt JPEG."""
    root = tmp_path / "colors"
    write_color_images(root / "blue", "blue", 24, seed=2)
    write_color_images(root / "red", "red", 24, seed=1)
    relabelled = root / "blue" / "<i>moved.jpg"
    shutil.move(root / "red" / "red_000.jpg", relabelled)
    duplicate = root / "blue" / "copy_of_blue_001.jpg"
    shutil.copy(root / "blue" / "blue_001.jpg", duplicate)
    in_both = root / "blue" / "red_005_copy.jpg"
    shutil.copy(root / "red" / "red_005.jpg", in_both)
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    return {"root": root, "relabelled": relabelled, "duplicate": duplicate, "in_both": in_both,
            "original": root / "red" / "red_005.jpg"}


def test_doctor_finds_planted_problems_and_its_csv_excludes_them(planted_folder, tmp_path):
    from click.testing import CliRunner

    from dlpipe.pipelines import api
    from dlpipe.pipelines.cli import main

    out = tmp_path / "doctor"
    args = ["doctor", str(planted_folder["root"]), "--out", str(out)]
    for item in FEATURE_SETS:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with open(out / "doctor.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["problem"], set()).add(Path(row["path"]).name)
    assert {"<i>moved.jpg", "red_005_copy.jpg"} <= found["label_error"]  # both are red photos in blue/
    assert len(found["label_error"]) <= 4  # a few honest blue photos at most, not the folder
    assert found["exact_duplicate"] == {"copy_of_blue_001.jpg"}
    assert found["cross_class_duplicate"] == {"red_005_copy.jpg", "red_005.jpg"}
    assert found["unreadable"] == {"broken.jpg"}
    page = (out / "doctor.html").read_text(encoding="utf-8")
    assert "&lt;i&gt;moved.jpg" in page and "<i>moved" not in page and "data:image/jpeg;base64," in page

    run = api.run("image-classify", data=str(planted_folder["root"]), out=tmp_path / "run", echo=lambda _: None,
                  sets=[*TINY_SETS, "train.epochs=2", "export.formats=[keras]", f"load.exclude={out / 'doctor.csv'}"])
    data = json.loads((run.out_dir / "report.json").read_text())["data"]
    listed = {row["path"] for row in rows if row["problem"] != "unreadable"}  # never among the usable photos
    assert data["excluded"] == len(listed) >= 4
    assert data["train_images"] + data["val_images"] == 50 - len(listed)


def test_exclude_takes_a_plain_list_and_a_missing_file_is_one_clear_error(planted_folder, tmp_path):
    from dlpipe.data.exclude_list import drop_excluded, read_exclude_list
    from dlpipe.errors import DataError
    from dlpipe.pipelines import api

    listing = tmp_path / "drop.txt"
    listing.write_text(f"# planted\n{planted_folder['duplicate']}\n\n{planted_folder['relabelled']}\n", encoding="utf-8")
    paths = [str(planted_folder["duplicate"]), str(planted_folder["original"]), str(planted_folder["relabelled"])]
    kept, labels, dropped = drop_excluded(paths, [0, 1, 0], read_exclude_list(listing))
    assert kept == [str(planted_folder["original"])] and labels == [1] and dropped == 2
    with pytest.raises(DataError, match="exclude list not found") as error:
        api.run("image-classify", data=str(planted_folder["root"]), out=tmp_path / "run", echo=lambda _: None,
                sets=[*TINY_SETS, f"load.exclude={tmp_path / 'missing.csv'}"])
    assert "\n" not in str(error.value) and "missing.csv" in str(error.value)


def test_a_copy_in_both_the_training_and_the_validation_folder_is_a_split_duplicate(tmp_path):
    from dlpipe.pipelines.doctor import duplicate_findings

    write_color_images(tmp_path / "train" / "blue", "blue", 3, seed=2)
    write_color_images(tmp_path / "val" / "blue", "blue", 2, seed=5)
    leaked = tmp_path / "val" / "blue" / "leaked.jpg"
    shutil.copy(tmp_path / "train" / "blue" / "blue_001.jpg", leaked)
    paths = sorted(str(p) for p in tmp_path.glob("*/blue/*.jpg"))
    split_of = ["val" if "/val/" in p else "train" for p in paths]
    findings = duplicate_findings(paths, [0] * len(paths), ["blue"], None, 4, None, split_of)
    assert [(Path(f.path).name, f.problem) for f in findings if f.problem == "split_duplicate"] == [("leaked.jpg", "split_duplicate")]
    plain = duplicate_findings(paths, [0] * len(paths), ["blue"], None, 4, None)  # no val_path: just a copy
    assert [(Path(f.path).name, f.problem) for f in plain] == [("leaked.jpg", "exact_duplicate")]


def test_text_doctor_finds_a_duplicate_and_a_conflict(tmp_path):
    from click.testing import CliRunner

    from conftest import write_sentences
    from dlpipe.pipelines.cli import main

    path = write_sentences(tmp_path / "sentences.txt", 160, seed=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines += [lines[10], "The phone was awful, the worst.\t0", "The phone was awful, the worst.\t1"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "doctor"
    result = CliRunner().invoke(main, ["doctor", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "doctor.csv", encoding="utf-8") as handle:
        found: dict[str, set[str]] = {}
        for row in csv.DictReader(handle):
            found.setdefault(row["problem"], set()).add(row["path"].rsplit("#", 1)[1])
    assert "row161" in found["exact_duplicate"] and "label_error" not in found
    assert found["conflicting_labels"] == {"row162", "row163"}
    assert "Same or nearly the same text, different labels" in (out / "doctor.html").read_text(encoding="utf-8")


def test_the_doctor_refuses_a_run_folder(tmp_path, color_folder):
    from click.testing import CliRunner

    from dlpipe.pipelines.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("pipeline: image-classify\n")
    result = CliRunner().invoke(main, ["doctor", str(color_folder), "--out", str(run)])
    assert result.exit_code == 2 and "holds a run" in result.output
    assert (run / "config.yaml").read_text() == "pipeline: image-classify\n"
