"""COCO, Pascal VOC and YOLO labels read into the same photos and boxes; the format told from the folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from helpers_boxes import CLASS_NAMES, FORMATS, write_box_dataset

from dlpipe.data.box_annotations import BoxLabel, read_box_annotations
from dlpipe.data.box_formats import detect_box_format
from dlpipe.errors import ConfigError, DataError

FASHION = SHARED_DATA / "detection_fashion"


def names(found) -> list[str]:
    return [Path(photo).name for photo in found.images]


@pytest.mark.parametrize("flat", [False, True], ids=["usual-layout", "labels-beside-photos"])
def test_the_three_formats_give_the_same_photos_boxes_and_class_names(tmp_path, flat):
    read = {}
    for fmt in FORMATS:
        if fmt == "coco" and flat:
            continue  # COCO has one layout
        classes, objects = write_box_dataset(tmp_path / fmt, fmt, n_photos=8, flat=flat)
        read[fmt] = read_box_annotations(tmp_path / fmt)
        assert read[fmt].objects == objects and read[fmt].class_names == classes == CLASS_NAMES
    first = next(iter(read.values()))
    assert all(names(found) == [f"photo_{i:03d}.jpg" for i in range(8)] for found in read.values())
    assert all(found.objects == first.objects for found in read.values())
    assert [i for i, objects in enumerate(first.objects) if not objects] == [3, 7]  # the negatives are kept
    assert {obj.label for objects in first.objects for obj in objects} == set(CLASS_NAMES)


def test_the_format_is_told_from_what_the_path_holds(tmp_path):
    for fmt in FORMATS:
        write_box_dataset(tmp_path / fmt, fmt, n_photos=4)
        write_box_dataset(tmp_path / f"{fmt}-flat", fmt, n_photos=4, flat=True)
        assert detect_box_format(tmp_path / fmt) == fmt
        assert detect_box_format(tmp_path / f"{fmt}-flat") == fmt
    assert detect_box_format(tmp_path / "coco" / "annotations.json") == "coco"
    assert detect_box_format(tmp_path / "yolo" / "data.yaml") == "yolo"
    assert names(read_box_annotations(tmp_path / "voc", fmt="voc")) == names(read_box_annotations(tmp_path / "coco"))
    with pytest.raises(DataError, match="holds no .json file"):  # forced: told what that format misses
        read_box_annotations(tmp_path / "voc", fmt="coco")


def test_an_empty_or_ambiguous_folder_names_the_layouts_and_load_format(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as error:
        read_box_annotations(tmp_path / "empty")
    message = str(error.value)
    assert all(word in message for word in ("COCO", "Pascal VOC", "YOLO", "load.format", "empty")), message
    assert "\n" not in message
    write_box_dataset(tmp_path / "both", "voc", n_photos=4)
    write_box_dataset(tmp_path / "both", "coco", n_photos=4)
    with pytest.raises(DataError, match=r"more than one format \(coco and voc\); set load.format"):
        read_box_annotations(tmp_path / "both")
    assert len(read_box_annotations(tmp_path / "both", fmt="voc").images) == 8  # JPEGImages/ and images/
    with pytest.raises(ConfigError, match="load.format: must be auto, coco, voc, yolo; got 'pascal'"):
        read_box_annotations(tmp_path / "both", fmt="pascal")


def test_photos_without_labels_are_negatives_in_every_format(tmp_path):
    write_box_dataset(tmp_path / "yolo", "yolo", n_photos=8)
    assert (tmp_path / "yolo/labels/photo_003.txt").read_text() == ""  # empty label file
    assert not (tmp_path / "yolo/labels/photo_007.txt").exists()  # no label file
    assert read_box_annotations(tmp_path / "yolo").objects[3] == read_box_annotations(tmp_path / "yolo").objects[7] == []
    write_box_dataset(tmp_path / "voc", "voc", n_photos=8)
    (tmp_path / "voc/Annotations/photo_007.xml").unlink()  # a photo in JPEGImages/ that no .xml names
    found = read_box_annotations(tmp_path / "voc")
    assert len(found.images) == 8 and found.objects[3] == found.objects[7] == []
    write_box_dataset(tmp_path / "coco", "coco", n_photos=8)
    coco = json.loads((tmp_path / "coco/annotations.json").read_text())
    assert {a["image_id"] for a in coco["annotations"]} == {1, 2, 3, 5, 6, 7}  # photos 4 and 8 have none
    assert [len(o) == 0 for o in read_box_annotations(tmp_path / "coco").objects].count(True) == 2


def test_boxes_spilling_over_the_edge_are_clipped_in_every_format(tmp_path):
    spill = BoxLabel("square", (0.0, 44.0, 16.0, 64.0))  # written as (-4, 44)-(16, 68) in a 64x64 photo
    write_box_dataset(tmp_path / "coco", "coco", n_photos=4)
    document = json.loads((tmp_path / "coco/annotations.json").read_text())
    document["annotations"].append({"id": 99, "image_id": 4, "category_id": 3, "bbox": [-4, 44, 20, 24]})
    (tmp_path / "coco/annotations.json").write_text(json.dumps(document))
    write_box_dataset(tmp_path / "voc", "voc", n_photos=4)
    xml = tmp_path / "voc/Annotations/photo_003.xml"
    xml.write_text(xml.read_text().replace("</annotation>", "<object><name>square</name><bndbox><xmin>-4</xmin>"
                                           "<ymin>44</ymin><xmax>16</xmax><ymax>68</ymax></bndbox></object></annotation>"))
    write_box_dataset(tmp_path / "yolo", "yolo", n_photos=4)
    (tmp_path / "yolo/labels/photo_003.txt").write_text("2 0.09375 0.875 0.3125 0.375\n")
    for fmt in FORMATS:
        assert read_box_annotations(tmp_path / fmt).objects[3] == [spill], fmt


def test_given_classes_set_the_order_and_voc_difficult_is_a_crowd(tmp_path):
    write_box_dataset(tmp_path / "voc", "voc", n_photos=4)
    xml = tmp_path / "voc/Annotations/photo_000.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    found = read_box_annotations(tmp_path / "voc", classes=["square", "disc", "bar", "hat"])
    assert found.class_names == ["square", "disc", "bar", "hat"]
    assert [obj.crowd for obj in found.objects[0]][:2] == [True, False]
    write_box_dataset(tmp_path / "yolo", "yolo", n_photos=4, flat=True)
    (tmp_path / "yolo/classes.txt").unlink()
    with pytest.raises(DataError, match="no names: write classes.txt"):
        read_box_annotations(tmp_path / "yolo")
    boxes = lambda found: [[(obj.label, obj.box) for obj in objects] for objects in found.objects]
    assert boxes(read_box_annotations(tmp_path / "yolo", classes=CLASS_NAMES)) == boxes(found)
    with pytest.raises(ConfigError, match=r"load.classes: names \['bar'\] more than once"):
        read_box_annotations(tmp_path / "voc", classes=["bar", "disc", "bar"])


def test_a_yolo_data_yaml_reads_its_train_photos_only(tmp_path):
    _, objects = write_box_dataset(tmp_path, "yolo", n_photos=8)
    for sub in ("images", "labels"):
        (tmp_path / sub / "train").mkdir()
        (tmp_path / sub / "val").mkdir()
        for path in sorted((tmp_path / sub).glob("photo_*")):
            path.rename(tmp_path / sub / ("train" if int(path.stem[-3:]) < 6 else "val") / path.name)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: {'0': bar, '1': disc, "
                                        "'2': square}\n")
    (tmp_path / "images/train/.ipynb_checkpoints").mkdir()  # a notebook's copies are not photos of the set
    shutil.copy(tmp_path / "images/train/photo_000.jpg", tmp_path / "images/train/.ipynb_checkpoints")
    found = read_box_annotations(tmp_path / "data.yaml")
    assert names(found) == [f"photo_{i:03d}.jpg" for i in range(6)] and found.objects == objects[:6]
    assert len(read_box_annotations(tmp_path).images) == 8  # the folder: every photo under images/


def test_a_roboflow_yolo_export_reads_its_train_split(tmp_path):
    _, objects = write_box_dataset(tmp_path / "train", "yolo", n_photos=4)
    (tmp_path / "train/data.yaml").rename(tmp_path / "data.yaml")
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 3\n"
                                        "names: ['bar', 'disc', 'square']\n")
    found = read_box_annotations(tmp_path)
    assert found.source == str(tmp_path / "data.yaml") and found.objects == objects


def test_the_shared_detection_fashion_set_reads_in_full():
    found = read_box_annotations(FASHION)
    assert found.class_names == ["trouser", "dress", "sneaker", "bag"]  # COCO's categories in file order
    assert len(found.images) == 300 and sum(len(objects) for objects in found.objects) == 821
    assert sum(not objects for objects in found.objects) == 22
    assert all(0 <= b.box[0] < b.box[2] <= 320 and 0 <= b.box[1] < b.box[3] <= 320 for o in found.objects for b in o)
