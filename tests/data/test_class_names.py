"""Class names are checked where they are read, in one line naming the folder or file, before any training."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import write_color_images
from dlpipe.data.class_names import check_class_folders, name_problem
from dlpipe.data.multilabel import read_multilabel
from dlpipe.data.text import read_labelled_text
from dlpipe.errors import DataError


def test_what_a_class_name_may_not_hold():
    assert name_problem("ants") is None and name_problem("café crème") is None
    assert "control character, line break" in name_problem("bees\nwasps")
    assert "control character, line break" in name_problem("a\u2028b")  # a Unicode line separator
    assert "control character, line break" in name_problem("bad\udcffbyte")  # an undecodable file-name byte
    assert "path separator" in name_problem("a/b") and "path separator" in name_problem("..")
    assert "over the limit of 128" in name_problem("x" * 129)


def test_a_class_folder_named_with_a_newline_is_refused_before_training(tmp_path):
    root = tmp_path / "photos"
    write_color_images(root / "red", "red", 3, seed=1, size=16)
    write_color_images(root / "blue\nsky", "blue", 3, seed=2, size=16)
    with pytest.raises(DataError, match=r"class folder 'blue\\nsky' holds a control character"):
        check_class_folders(root)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dlpipe", "run", "image-classify", "--data", str(root),
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - started < 5  # refused before TensorFlow is imported
    assert result.returncode == 2
    assert result.stderr == (f"error: {root}: class folder 'blue\\nsky' holds a control character, line break or "
                             "undecodable byte; rename the folder: one line of text, no '/' or '\\'\n")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_multilabel_and_text_labels_are_checked_too(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,labels\na.png,cats;dogs/wolves\n")
    with pytest.raises(DataError, match=r"labels.csv:2: label 'dogs/wolves' holds a path separator"):
        read_multilabel(labels)
    coco = tmp_path / "annotations.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "a\tb"}]}))
    with pytest.raises(DataError, match=r"annotations.json: category name 'a\\tb' holds a control character"):
        read_multilabel(coco)
    texts = tmp_path / "texts.tsv"
    texts.write_text("fine\tpos\nbad\tneg\nodd\tx\u2029y\nodder\tw\u2029z\n")
    with pytest.raises(DataError, match=r"texts.tsv:3: label 'x\\u2029y' holds a control character"):
        read_labelled_text([texts])


def test_a_utf16_multilabel_csv_is_read_in_its_encoding(tmp_path):
    write_color_images(tmp_path / "photos", "red", 2, seed=3, size=16)
    labels = tmp_path / "labels.csv"
    labels.write_bytes("path,labels\nphotos/red_000.jpg,bag;café\nphotos/red_001.jpg,dress\n".encode("utf-16"))
    data = read_multilabel(labels)
    assert data.class_names == ["bag", "café", "dress"] and data.labels == [["bag", "café"], ["dress"]]
