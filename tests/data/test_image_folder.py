"""Scanning dataset folders: bad files are skipped with a reason, folder problems are one-line errors."""

from __future__ import annotations

import pytest

from dlpipe.data.images import scan_image_folder, sniff_format
from dlpipe.data.split import stratified_split
from dlpipe.errors import DataError


def test_clean_folder_is_indexed_by_class(color_folder):
    folder = scan_image_folder(color_folder)
    assert folder.class_names == ["blue", "red"]
    assert folder.class_counts() == {"blue": 24, "red": 24}
    assert not folder.skipped and not folder.notes


def test_messy_folder_skips_bad_files_and_notes_the_rest(messy_folder):
    folder = scan_image_folder(messy_folder)
    assert folder.class_names == ["blue", "red"]  # the empty class is left out
    skipped = {issue.path.rsplit("/", 1)[-1]: issue.reason for issue in folder.skipped}
    assert list(skipped) == ["corrupt.jpg"]
    assert "cannot be decoded as JPEG" in skipped["corrupt.jpg"]
    notes = {issue.path.rsplit("/", 1)[-1]: issue.reason for issue in folder.notes}
    assert notes["really_a_gif.jpg"].startswith("GIF data with .jpg name")
    assert "no usable images" in notes["empty_class"]
    assert any(path.endswith("really_a_gif.jpg") for path in folder.paths)  # decoded, not dropped
    assert not any(path.endswith("notes.txt") for path in folder.paths)


def test_missing_folder_and_single_class_are_errors(tmp_path, color_folder):
    with pytest.raises(DataError, match="folder does not exist"):
        scan_image_folder(tmp_path / "nope")
    only = tmp_path / "only"
    (only / "ants").mkdir(parents=True)
    for source in sorted((color_folder / "red").iterdir())[:3]:
        (only / "ants" / source.name).write_bytes(source.read_bytes())
    with pytest.raises(DataError, match="at least two class sub-folders with images, found 'ants'"):
        scan_image_folder(only)


def test_non_image_content_is_skipped_with_its_reason(color_folder):
    (color_folder / "blue" / "fake.png").write_text("hello")
    folder = scan_image_folder(color_folder)
    assert folder.skipped[0].path.endswith("fake.png")
    assert "not a JPEG, PNG, GIF or BMP" in folder.skipped[0].reason


def test_sniff_format_reads_magic_bytes():
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"GIF89a...") == "GIF"
    assert sniff_format(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff_format(b"hello") is None


def test_stratified_split_is_proportional_and_seeded():
    labels = [0] * 50 + [1] * 10 + [2] * 2 + [3]
    train, val = stratified_split(labels, 0.2, seed=7)
    assert sorted(train + val) == list(range(len(labels)))
    val_counts = [sum(labels[i] == c for i in val) for c in range(4)]
    assert val_counts == [10, 2, 1, 0]  # at least one per class that has two, none from a singleton
    assert stratified_split(labels, 0.2, seed=7) == (train, val)
    assert stratified_split(labels, 0.2, seed=8) != (train, val)
