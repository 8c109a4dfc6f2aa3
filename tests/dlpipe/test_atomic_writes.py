"""`dlpipe.atomic`: a write that dies midway never leaves a torn or missing file behind."""

from __future__ import annotations

import json
import os

import pytest

from dlpipe import atomic


class Boom(Exception):
    pass


def test_write_text_and_json_replace_in_one_step(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    atomic.write_text(target, "first")
    atomic.write_text(target, "second")
    assert target.read_text() == "second"
    atomic.write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "deep"]  # no temporary files left


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "file.txt"
    atomic.write_text(target, "good")

    def dies(*args):
        raise Boom

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(Boom):
        atomic.write_text(target, "half")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_replacing_file_gives_a_temporary_with_the_same_suffix(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with atomic.replacing_file(target) as tmp:
        assert tmp.suffix == ".keras" and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # not replaced until the block succeeds
    assert target.read_text() == "new"
    with pytest.raises(Boom):
        with atomic.replacing_file(target) as tmp:
            tmp.write_text("torn")
            raise Boom
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_replacing_dir_swaps_whole_folders(tmp_path):
    target = tmp_path / "savedmodel"
    with atomic.replacing_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(Boom):
        with atomic.replacing_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise Boom
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic.replacing_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel"]  # neither the old copy nor a partial one is left


def test_written_files_and_folders_get_the_usual_permissions(tmp_path):
    """mkstemp/mkdtemp create owner-only entries; the result must be as readable as an ordinary write."""
    previous = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "labels.txt", "ant\n")
        with atomic.replacing_dir(tmp_path / "savedmodel") as tmp:
            (tmp / "saved_model.pb").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "labels.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "savedmodel").stat().st_mode & 0o777 == 0o755
