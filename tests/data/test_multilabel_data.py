"""Reading multi-label datasets: a CSV of path,labels and a COCO JSON, and the errors a user can fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlpipe.data.multilabel import multi_hot, read_multilabel
from dlpipe.errors import DataError

FASHION = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "detection_fashion"


def _photo(path: Path) -> None:
    Image.fromarray(np.full((12, 12, 3), 120, np.uint8)).save(path)


def test_a_csv_gives_label_sets_sorted_names_and_skips_unreadable_photos(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _photo(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    (tmp_path / "labels.csv").write_text("path,labels\na.png,dress;bag\nb.png,\nc.png, bag \nmissing.png,bag\n"
                                         "broken.png,dress\n")
    data = read_multilabel(tmp_path / "labels.csv")
    assert data.class_names == ["bag", "dress"]
    assert [Path(p).name for p in data.paths] == ["a.png", "b.png", "c.png"]
    assert data.labels == [["bag", "dress"], [], ["bag"]]
    assert data.multi_hot().tolist() == [[1, 1], [0, 0], [1, 0]]
    reasons = dict((Path(p).name, r) for p, r in data.skipped)
    assert reasons["missing.png"] == "no such file" and "decoded" in reasons["broken.png"]


@pytest.mark.parametrize("text, expected", [
    ("a.png,dress,bag\n", "labels.csv:1: expected 'path,labels'"),
    (",dress\n", "labels.csv:1: expected 'path,labels'"),
    ("path,labels\n\na.png,dress\nb.png,\"bag\n", "labels.csv:4: is not valid CSV"),
    ('a.png,bag\nb.png,"dress\nbag"\n', "labels.csv:2: label 'dress\\\\nbag' holds a line break"),
    ("path\na.png\nb.png\n", "labels.csv: has no labels column"),
    ("a.png,dress\nb.png,bag\n./a.png,bag\n", "labels.csv:3: ./a.png is listed again \\(first on line 1\\)"),
])
def test_a_malformed_row_names_the_file_and_line(tmp_path, text, expected):
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DataError, match=expected):
        read_multilabel(tmp_path / "labels.csv")


@pytest.mark.parametrize("header", ["path,labels", "filename,tags", "Image,Label", ""])
def test_a_header_row_naming_the_columns_is_not_a_photo(tmp_path, header):
    _photo(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text(f"{header}\na.png,dress\n".lstrip())
    data = read_multilabel(tmp_path / "labels.csv")
    assert data.class_names == ["dress"] and not data.skipped


def test_non_utf8_and_unknown_formats_are_refused_with_the_fix(tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"a.png,caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_multilabel(tmp_path / "labels.csv")
    (tmp_path / "labels.xlsx").write_bytes(b"x")
    with pytest.raises(DataError, match="neither a .csv"):
        read_multilabel(tmp_path / "labels.xlsx")
    with pytest.raises(DataError, match="does not exist"):
        read_multilabel(tmp_path / "nothing.csv")
    with pytest.raises(DataError, match="is not one of the labels"):
        multi_hot([["hat"]], ["bag"])


def test_a_coco_json_gives_each_photo_the_categories_boxed_in_it(tmp_path):
    _photo(tmp_path / "one.png")
    _photo(tmp_path / "two.png")
    coco = {"images": [{"id": 1, "file_name": "one.png", "width": 12, "height": 12},
                       {"id": 2, "file_name": "two.png", "width": 12, "height": 12}],
            "categories": [{"id": 7, "name": "sneaker"}, {"id": 9, "name": "bag"}, {"id": 3, "name": "hat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 4, 4], "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [5, 5, 4, 4], "iscrowd": 0},
                            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [2, 2, 3, 3], "iscrowd": 0}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    data = read_multilabel(tmp_path)  # the folder holding annotations.json
    assert data.class_names == ["bag", "hat", "sneaker"]  # every category, boxed or not
    assert data.labels == [["bag", "sneaker"], []]


def test_the_shared_fashion_scenes_read_as_multi_label():
    data = read_multilabel(FASHION, verify=False)
    assert data.class_names == ["bag", "dress", "sneaker", "trouser"]
    assert len(data.paths) == 300 and not data.skipped
    assert sum(1 for labels in data.labels if not labels) == 22  # the README's scenes without items
