"""dlpipe distill: a small student learns a tiny teacher run's soft labels over unlabelled sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TINY_TEXT_SETS, write_sentences

from dlpipe.pipelines.cli import main

STUDENT_SETS = ["model.embedding_dim=8", "model.units=8", "train.epochs=8", "load.val_split=0.25"]


def _texts_only(labelled, path):
    path.write_text("".join(line.split("\t")[0] + "\n" for line in labelled.read_text().splitlines()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A teacher trained on 200 labelled sentences; a student given 40 labelled + 300 unlabelled ones."""
    from dlpipe.pipelines import api

    root = tmp_path_factory.mktemp("distill")
    teacher = root / "teacher"
    api.run("sentiment", data=str(write_sentences(root / "teacher.tsv", 200, seed=1)), out=teacher,
            sets=[*TINY_TEXT_SETS, "export.formats=[keras]"], echo=lambda _: None)
    unlabelled = _texts_only(write_sentences(root / "pool.tsv", 300, seed=2), root / "unlabelled.txt")
    student = root / "student"
    result = CliRunner().invoke(main, ["distill", str(teacher), "--data", str(write_sentences(root / "few.tsv", 40, seed=3)),
                                       "--unlabelled", str(unlabelled), "--out", str(student),
                                       *[arg for item in [*TINY_TEXT_SETS, *STUDENT_SETS, "export.formats=[keras]"]
                                         for arg in ("--set", item)]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, teacher, student, unlabelled


def test_student_learns_the_teacher_and_beats_chance(distilled):
    from dlpipe.models.runtimes import load_runtime

    root, teacher, student, _ = distilled
    held_out = write_sentences(root / "held_out.tsv", 100, seed=4).read_text().splitlines()
    texts = [line.split("\t")[0] for line in held_out]
    labels = np.array([int(line.split("\t")[1]) for line in held_out])
    teacher_says = load_runtime(teacher).predict(texts).argmax(axis=1)
    student_rt = load_runtime(student)
    assert student_rt.class_names == ["0", "1"]
    student_says = student_rt.predict(texts).argmax(axis=1)
    # chance is 0.5; the student saw only 30 labelled training sentences, the rest it learnt from the teacher
    assert (student_says == labels).mean() >= 0.8
    assert (student_says == teacher_says).mean() >= 0.8
    teacher_size = load_runtime(teacher).model.count_params()
    assert student_rt.model.count_params() < teacher_size


def test_soft_targets_are_the_teachers_probabilities(distilled):
    from dlpipe.models.runtimes import load_runtime

    _, teacher, student, unlabelled = distilled
    with np.load(student / "distill_targets.npz") as saved:
        targets, probs, labelled, labels = saved["targets"], saved["teacher"], int(saved["labelled"]), saved["labels"]
    assert labelled == 30 and len(targets) == 30 + 300 and np.all(labels[labelled:] == -1)
    pool = unlabelled.read_text().splitlines()
    fresh = load_runtime(teacher).predict(pool[:8])
    np.testing.assert_allclose(probs[labelled:labelled + 8], fresh, atol=1e-5)
    np.testing.assert_allclose(targets[labelled:], probs[labelled:], atol=1e-6)  # temperature 1: unchanged
    # labelled texts: alpha 0.5 of the one-hot label, the rest the teacher's probabilities
    np.testing.assert_allclose(targets[:labelled], 0.5 * np.eye(2)[labels[:labelled]] + 0.5 * probs[:labelled], atol=1e-6)
    report = json.loads((student / "report.json").read_text())
    assert report["distill"]["unlabelled_texts"] == 300 and report["distill"]["alpha"] == 0.5


def test_student_run_is_a_normal_run(distilled, tmp_path):
    root, _, student, _ = distilled
    for name in ("labels.txt", "preprocessing.json", "artifacts.json", "MODEL_CARD.md", "report.html", "metrics.json"):
        assert (student / name).is_file(), name
    card = (student / "MODEL_CARD.md").read_text()
    assert f"Distilled from the teacher run `{root / 'teacher'}`" in card and "+ 300 unlabelled texts" in card
    texts = tmp_path / "texts.txt"
    texts.write_text("Really great and wonderful service.\nThe worst, terrible food.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["predict", str(student), str(texts), "--out", str(tmp_path / "rows.jsonl")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [row["label"] for row in rows] == ["1", "0"]


def test_bad_teacher_and_unlabelled_files_are_one_line_errors(distilled, tmp_path):
    root, teacher, _, _ = distilled
    data = str(root / "few.tsv")
    image_run = tmp_path / "image_run"
    image_run.mkdir()
    (image_run / "labels.txt").write_text("ant\nbee\n")
    (image_run / "preprocessing.json").write_text('{"task": "image"}')
    empty, latin = tmp_path / "empty.txt", tmp_path / "latin.txt"
    empty.write_text("\n\n")
    latin.write_bytes("Café très bon, crème brûlée\nDéçu, trop salé\n".encode("latin-1"))
    cases = [([str(image_run)], str(image_run), "not a text run"),
             ([str(tmp_path)], str(tmp_path), "not a finished dlpipe run folder"),
             ([str(teacher), "--unlabelled", str(empty)], str(empty), "holds no texts"),
             ([str(teacher), "--unlabelled", str(latin)], str(latin), "UTF-8")]
    for args, named, words in cases:
        result = CliRunner().invoke(main, ["distill", *args, "--data", data, "--out", str(tmp_path / "out")])
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and words in lines[0], result.output


def test_lr_find_sweeps_the_student_on_soft_targets(distilled, tmp_path):
    root, teacher, _, unlabelled = distilled
    sets = [*TINY_TEXT_SETS, *STUDENT_SETS, f"distill.teacher={teacher}", f"distill.unlabelled={unlabelled}",
            "train.lr_find_steps=20"]
    result = CliRunner().invoke(main, ["lr-find", "distill", "--data", str(root / "few.tsv"), "--out", str(tmp_path),
                                       *[arg for item in sets for arg in ("--set", item)]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sweep = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(sweep["losses"]) == 20 and all(np.isfinite(sweep["losses"][:5]))


def test_a_student_run_resumes_with_its_saved_config(distilled, tmp_path):
    import shutil

    _, teacher, student, _ = distilled
    copy = tmp_path / "student"
    shutil.copytree(student, copy, ignore=shutil.ignore_patterns(".dlpipe.lock"))
    result = CliRunner().invoke(main, ["distill", str(teacher), "--resume", "--out", str(copy)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "metrics.json").read_text())["accuracy"] == json.loads((student / "metrics.json").read_text())["accuracy"]
    missing = CliRunner().invoke(main, ["distill", str(teacher), "--out", str(tmp_path / "new")])
    assert missing.exit_code != 0 and "--data FILE" in missing.output
