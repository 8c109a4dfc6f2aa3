"""Every bad entry of a VOC or YOLO dataset stops with one line naming the file, the entry and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_boxes import write_box_dataset

from dlpipe.data.box_annotations import read_box_annotations
from dlpipe.errors import DataError

FIRST_XML = "Annotations/photo_000.xml"  # photo 0: a bar (18, 2)-(22, 14), then two discs, in 64x64
FIRST_TXT = "labels/photo_000.txt"


def replace(old: str, new: str):
    return lambda text: text.replace(old, new, 1)


def line(text: str):
    return lambda _: text


VOC_CASES = [  # (file changed, change, the entry and reason the message holds, the file it starts with if not that)
    (FIRST_XML, replace("<filename>photo_000.jpg", "<filename>gone.jpg"), "names photo 'gone.jpg', which is missing"),
    (FIRST_XML, replace("<xmin>18</xmin>", "<xmin>1 8</xmin>"), "object 1 (bar): bndbox/xmin is '1 8', not a number"),
    (FIRST_XML, replace("<xmin>18</xmin>", ""), "object 1 (bar): bndbox/xmin is missing"),
    (FIRST_XML, replace("<xmax>22</xmax>", "<xmax>18</xmax>"), "object 1 (bar): bndbox 18 2 18 14 has no area"),
    (FIRST_XML, replace("<xmin>18</xmin><ymin>2</ymin><xmax>22</xmax>", "<xmin>70</xmin><ymin>2</ymin><xmax>90</xmax>"),
     "object 1 (bar): bndbox 70 2 90 14 lies outside its 64x64 photo"),
    (FIRST_XML, replace("<name>bar</name>", "<name></name>"), "object 1 has no <name>"),
    (FIRST_XML, replace("<difficult>0</difficult>", "<difficult>maybe</difficult>"), "object 1: <difficult> is 'maybe'"),
    (FIRST_XML, replace("<width>64</width>", "<width>640</width>"), "says its photo is 640x64 but photo_000.jpg is 64x64"),
    (FIRST_XML, replace("</annotation>", ""), "is not well-formed XML"),
    (FIRST_XML, lambda _: "<labels/>", "is not a Pascal VOC annotation (its root is <labels>"),
]
YOLO_CASES = [
    (FIRST_TXT, line("7 0.5 0.5 0.2 0.2\n"), "line 1 ('7 0.5 0.5 0.2 0.2'): class 7 is not among the 3 names in"),
    (FIRST_TXT, line("0 0.5 0.5 0.2 0.2\n1.5 0.5 0.5 0.2 0.2\n"), "line 2 ('1.5 0.5 0.5 0.2 0.2'): the class '1.5' is "
                                                                  "not a whole number 0-2"),
    (FIRST_TXT, line("0 0.5 0.5 0.2\n"), "line 1 ('0 0.5 0.5 0.2') has 4 fields, not 5"),
    (FIRST_TXT, line("0 0.1 0.1 0.2 0.1 0.2 0.2\n"), "has 7 fields, not 5; a YOLO line is `class cx cy w h`"),
    (FIRST_TXT, line("0 0.5 half 0.2 0.2\n"), "line 1 ('0 0.5 half 0.2 0.2'): 'half' is not a number"),
    (FIRST_TXT, line("0 0.5 nan 0.2 0.2\n"), "line 1 ('0 0.5 nan 0.2 0.2'): 'nan' is not a number"),
    (FIRST_TXT, line("0 32 32 10 10\n"), "line 1 ('0 32 32 10 10'): the numbers are not fractions of the photo"),
    (FIRST_TXT, line("0 0.5 0.5 0 0.2\n"), "line 1 ('0 0.5 0.5 0 0.2') has no area"),
    ("data.yaml", replace("  2: square\n", ""), "class 2 is not among the 2 names in", "labels/photo_00"),
    ("data.yaml", replace("names:", "names: [bar, bar]\nold_names:"), "names ['bar'] more than once; list each class once"),
    ("data.yaml", replace("train: images", "train: images/train"), "train names 'images/train', which is not a folder"),
    ("data.yaml", line("names: &n [a]\nval: *n\n"), "uses YAML aliases"),
    ("data.yaml", replace("names:", "nc: 5\nnames:"), "says nc: 5 but names 3 classes"),
    ("data.yaml", replace("  1: disc", "  7: disc"), "names' keys [0, 2, 7] must be the class numbers 0-2"),
]


@pytest.mark.parametrize("fmt, case", [("voc", case) for case in VOC_CASES] + [("yolo", case) for case in YOLO_CASES],
                         ids=[f"voc-{c[2][:30]}" for c in VOC_CASES] + [f"yolo-{c[2][:30]}" for c in YOLO_CASES])
def test_a_bad_entry_is_one_line_naming_the_file_and_entry(tmp_path, fmt, case):
    file, change, message, named = (*case, case[0])[:4]
    write_box_dataset(tmp_path, fmt, n_photos=4)
    path = tmp_path / file
    path.write_text(change(path.read_text()))
    with pytest.raises(DataError) as error:
        read_box_annotations(path if file == "data.yaml" else tmp_path)
    shown = str(error.value)
    assert message in shown and "\n" not in shown, shown
    assert shown.startswith(str(tmp_path / named)), shown


def test_unknown_classes_are_refused_when_classes_are_given(tmp_path):
    write_box_dataset(tmp_path / "voc", "voc", n_photos=4)
    with pytest.raises(DataError, match=r"photo_000.xml: object 1 is a 'bar', not one of the classes given "
                                        r"\(\['disc', 'square'\]\); add it to load.classes"):
        read_box_annotations(tmp_path / "voc", classes=["disc", "square"])
    write_box_dataset(tmp_path / "yolo", "yolo", n_photos=4)
    with pytest.raises(DataError, match=r"photo_000.txt: line 1 \('0 [0-9. ]+'\): class 0 is 'bar', not one of the "
                                        "classes given"):
        read_box_annotations(tmp_path / "yolo", classes=["disc", "square"])
    write_box_dataset(tmp_path / "coco", "coco", n_photos=4)
    with pytest.raises(DataError, match=r"annotations.json: annotation 1 is a 'bar', not one of the classes given"):
        read_box_annotations(tmp_path / "coco", classes=["disc", "square"])


@pytest.mark.parametrize("fmt, photo_dir", [("voc", "JPEGImages"), ("yolo", "images"), ("coco", "images")])
def test_an_unreadable_photo_is_named_with_its_fix(tmp_path, fmt, photo_dir):
    write_box_dataset(tmp_path, fmt, n_photos=4)
    (tmp_path / photo_dir / "photo_001.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=rf"^{tmp_path / photo_dir / 'photo_001.jpg'}: cannot be read as an image "
                                        r"\(.*\); fix it or remove"):
        read_box_annotations(tmp_path)


def test_a_yolo_train_list_naming_a_missing_photo_is_refused(tmp_path):
    write_box_dataset(tmp_path, "yolo", n_photos=4)
    (tmp_path / "train.txt").write_text("images/photo_000.jpg\nimages/gone.jpg\n")
    config = tmp_path / "data.yaml"
    config.write_text(config.read_text().replace("train: images", "train: train.txt"))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'images/gone.jpg'}: listed in data.yaml's train but missing"):
        read_box_annotations(config)
    assert [Path(p).name for p in read_box_annotations(tmp_path).images][-1] == "photo_003.jpg"  # the folder: all
