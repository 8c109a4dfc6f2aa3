"""A run checks its own data (pipelines/run_doctor.py): copies across its train/validation split and across classes,
and likely label errors from its held-out predictions, in doctor.csv, doctor.html and a section of report.html."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from conftest import TINY_SETS, TINY_TEXT_SETS, write_color_images, write_sentences
from PIL import Image


def findings(run: Path) -> dict[str, set[str]]:
    with open(run / "doctor.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["problem"], set()).add(row["path"])
    return found


def test_an_image_run_lists_its_planted_copies_and_mislabelled_photos(tmp_path):
    from dlpipe.pipelines import api

    root = tmp_path / "data"
    write_color_images(root / "train" / "blue", "blue", 24, seed=2)
    write_color_images(root / "train" / "red", "red", 24, seed=1)
    write_color_images(root / "val" / "blue", "blue", 12, seed=5)
    write_color_images(root / "val" / "red", "red", 12, seed=6)
    planted = []
    for index, colour in enumerate([(230, 20, 20), (200, 40, 30)]):  # red photos filed under blue
        planted.append(root / "val" / "blue" / f"planted_red_{index}.png")
        Image.fromarray(np.full((40, 40, 3), colour, np.uint8)).save(planted[-1])
    leaked = root / "val" / "red" / "copy_of_a_training_photo.jpg"
    shutil.copy(root / "train" / "red" / "red_000.jpg", leaked)
    crossed = root / "train" / "red" / "blue_photo_in_red.jpg"
    shutil.copy(root / "train" / "blue" / "blue_001.jpg", crossed)
    lines: list[str] = []
    out = tmp_path / "run"
    api.run("image-classify", data=str(root / "train"), out=out, echo=lines.append,
            sets=[*TINY_SETS, "export.formats=[keras]", "train.epochs=12", "train.learning_rate=0.003",
                  "augment.enabled=false", f"load.val_path={root / 'val'}"])
    found = findings(out)
    assert found["split_duplicate"] == {str(leaked.resolve())}
    assert {str(crossed.resolve()), str((root / "train" / "blue" / "blue_001.jpg").resolve())} <= found[
        "cross_class_duplicate"]
    flagged = found["label_error"]
    assert {str(p) for p in planted} <= {str(Path(p).resolve()) for p in flagged} and len(flagged) <= 4
    assert any(line.startswith("data doctor: ") and "from the validation predictions" in line for line in lines)
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2>Data doctor</h2>"):]
    assert "Likely label errors</td><td class=\"num\">" in section and 'href="doctor.html"' in section
    assert "planted_red_0.png" in (out / "doctor.html").read_text(encoding="utf-8")


def test_a_text_run_lists_a_sentence_on_both_sides_of_its_split_and_a_flipped_label(tmp_path):
    from dlpipe.pipelines import api

    train = write_sentences(tmp_path / "train.txt", 160, seed=3)
    val = write_sentences(tmp_path / "val.txt", 40, seed=4)
    repeated = train.read_text(encoding="utf-8").splitlines()[0]
    flipped = "great love excellent perfect wonderful phone"
    val.write_text(val.read_text(encoding="utf-8") + f"{repeated}\n{flipped}\t0\n", encoding="utf-8")
    out = tmp_path / "run"
    api.run("sentiment", data=str(train), out=out, echo=lambda _: None,
            sets=[*TINY_TEXT_SETS, "export.formats=[keras]", f"load.val_path={val}"])
    found = findings(out)
    assert "validation sentence 41" in found["split_duplicate"]  # the repeated line, after the 40 written ones
    assert "validation sentence 42" in found["label_error"]
    assert "Data doctor" in (out / "report.html").read_text(encoding="utf-8")


def test_the_unknown_answer_added_after_training_is_not_a_class_of_the_data(tmp_path):
    """A run with the unknown answer lists it last among its class names; the doctor must not count it as an empty,
    imbalanced class, nor search label errors among three classes of which the data has two."""
    from types import SimpleNamespace

    from dlpipe.pipelines.calibration import save_outputs
    from dlpipe.pipelines.run_doctor import doctor_run
    from dlpipe.pipelines.stage import Examples

    write_color_images(tmp_path / "blue", "blue", 15, seed=2)
    write_color_images(tmp_path / "red", "red", 15, seed=1)
    paths = {colour: sorted(str(p) for p in (tmp_path / colour).iterdir()) for colour in ("blue", "red")}
    train = Examples(inputs=paths["blue"][:5] + paths["red"][:5], labels=[0] * 5 + [1] * 5)
    val = Examples(inputs=paths["blue"][5:] + paths["red"][5:], labels=[0] * 10 + [1] * 10)
    logits = np.log(np.where(np.eye(2)[val.labels] > 0, 0.9, 0.1))
    logits[0] = np.log([0.02, 0.98])  # a blue photo the model is sure is red
    save_outputs(tmp_path, logits, val.labels, val.inputs)
    ctx = SimpleNamespace(task=SimpleNamespace(name="image"), class_names=["blue", "red", "unknown"], train=train,
                          val=val, config={"load": SimpleNamespace(path=str(tmp_path))}, out_dir=tmp_path)
    diagnosis = doctor_run(ctx)
    assert diagnosis.class_counts == {"blue": 15, "red": 15} and not diagnosis.of("class_imbalance")
    assert [f.path for f in diagnosis.of("label_error")] == [val.inputs[0]] and diagnosis.folds == 1
