"""Reading labelled text: bad lines are skipped and reported by line number."""

from __future__ import annotations

import pytest

from dlpipe.data.text import TextPreprocessing, read_labelled_text
from dlpipe.errors import DataError


def test_tsv_with_invalid_utf8_empty_lines_and_missing_labels(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_bytes(
        b"Great phone, love it.\t1\n"
        b"\n"
        b"Broken \xff\xfe after a day.\t0\n"
        b"No label here\n"
        b"Caf\xc3\xa9 was \"fine\" I guess.\t1\n"
        b"Terrible.\t\n"
    )
    table = read_labelled_text([path])
    assert table.texts == ["Great phone, love it.", 'Café was "fine" I guess.']
    assert table.labels == ["1", "1"]
    assert table.empty_lines == 1
    assert table.skipped == [
        (str(path), 3, "invalid UTF-8 byte at column 8"),
        (str(path), 4, "missing label"),
        (str(path), 6, "missing label"),
    ]


def test_csv_with_header_and_named_columns(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('id,sentence,sentiment\n1,"Good, really good",pos\n2,Bad,neg\n', encoding="utf-8")
    table = read_labelled_text([path], header=True, text_column="sentence", label_column="sentiment")
    assert table.texts == ["Good, really good", "Bad"]
    assert table.labels == ["pos", "neg"]
    with pytest.raises(DataError, match="no column named 'text'"):
        read_labelled_text([path], header=True, text_column="text", label_column="sentiment")


def test_files_without_usable_rows_and_missing_files_are_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\nonly text\n")
    with pytest.raises(DataError, match="no usable labelled rows"):
        read_labelled_text([empty])
    with pytest.raises(DataError, match="file does not exist"):
        read_labelled_text([tmp_path / "nope.txt"])


def test_standardize_modes():
    assert TextPreprocessing().standardize == "lower_and_strip_punctuation"
    assert TextPreprocessing(strip_punctuation=False).standardize == "lower"
    assert TextPreprocessing(lowercase=False, strip_punctuation=False).standardize is None
