"""COCO box annotations: read into photos and pixel boxes, and every malformed entry refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dlpipe.data.box_annotations import read_coco_annotations
from dlpipe.errors import DataError


def write_dataset(root: Path, annotations: list[dict], images: list[dict] | None = None) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), "white").save(root / "images" / "a.png")
    Image.new("RGB", (32, 32), "white").save(root / "b.png")  # beside the JSON also works
    document = {"images": images if images is not None else [{"id": 7, "file_name": "a.png", "width": 64, "height": 48},
                                                              {"id": 8, "file_name": "b.png"}],
                "annotations": annotations, "categories": [{"id": 3, "name": "dog"}, {"id": 5, "name": "cat"}]}
    (root / "annotations.json").write_text(json.dumps(document))
    return root / "annotations.json"


def test_reads_photos_in_file_order_with_pixel_boxes_by_category_name(tmp_path):
    path = write_dataset(tmp_path, [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [10, 5, 20, 30]},
                                    {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 64, 48], "iscrowd": 1}])
    found = read_coco_annotations(tmp_path)  # the folder finds its annotations.json
    assert found.source == str(path)
    assert [Path(p).name for p in found.images] == ["a.png", "b.png"]
    assert [(o.label, o.box, o.crowd) for o in found.objects[0]] == [("cat", (10.0, 5.0, 30.0, 35.0), False),
                                                                   ("dog", (0.0, 0.0, 64.0, 48.0), True)]
    assert found.objects[1] == []  # a photo with nothing to find still counts (its boxes are false positives)


@pytest.mark.parametrize("annotation, message", [
    ({"id": 4, "image_id": 99, "category_id": 3, "bbox": [1, 1, 5, 5]}, "annotation 4 names image_id 99"),
    ({"id": 4, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}, "annotation 4 names category_id 1"),
    ({"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5]}, "must be [x, y, width, height]"),
    ({"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 1, 0, 5]}, "has no area"),
    ({"id": 4, "image_id": 7, "category_id": 3, "bbox": [500, 1, 5, 5]}, "lies outside its 64x48 photo"),
])
def test_a_bad_annotation_is_refused_naming_it(tmp_path, annotation, message):
    write_dataset(tmp_path, [annotation])
    with pytest.raises(DataError) as error:
        read_coco_annotations(tmp_path / "annotations.json")
    assert message in str(error.value) and "annotations.json" in str(error.value) and "\n" not in str(error.value)


def test_missing_photos_wrong_sizes_and_other_files_are_refused(tmp_path):
    write_dataset(tmp_path, [], images=[{"id": 1, "file_name": "gone.jpg"}])
    with pytest.raises(DataError, match="gone.jpg.*missing"):
        read_coco_annotations(tmp_path)
    write_dataset(tmp_path, [], images=[{"id": 1, "file_name": "a.png", "width": 640, "height": 480}])
    with pytest.raises(DataError, match="is 64x48 but annotations.json says 640x480"):
        read_coco_annotations(tmp_path)
    (tmp_path / "annotations.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(DataError, match="not a UTF-8 JSON file"):
        read_coco_annotations(tmp_path)
    (tmp_path / "annotations.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match='needs the lists "images", "annotations" and "categories"'):
        read_coco_annotations(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no .json file"):
        read_coco_annotations(empty)
