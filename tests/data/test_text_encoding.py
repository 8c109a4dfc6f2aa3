"""Text files in the encoding their byte-order mark names; what cannot be decoded is refused naming file:line."""

from __future__ import annotations

import pytest

from dlpipe.data.text import read_labelled_text, read_unlabelled_texts
from dlpipe.errors import DataError

ROWS = ["great phone, love it\tpos", "awful, broke in a day\tneg", "café was fine\tpos", "never again\tneg"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_file_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path, codec):
    path = tmp_path / "reviews.tsv"
    text = "\n".join(ROWS) + "\n"
    path.write_bytes(("\ufeff" + text).encode(codec.removesuffix("-sig")) if codec.endswith("-be") else text.encode(codec))
    table = read_labelled_text([path])
    assert table.labels == ["pos", "neg", "pos", "neg"]
    assert table.texts[2] == "café was fine" and not table.skipped


def test_utf16_without_a_mark_and_undecodable_bytes_are_refused_with_file_and_line(tmp_path):
    no_mark = tmp_path / "no_mark.tsv"
    no_mark.write_bytes("\n".join(ROWS).encode("utf-16-le"))
    with pytest.raises(DataError, match=r"no_mark.tsv:1: holds NUL bytes"):
        read_labelled_text([no_mark])
    junk = tmp_path / "junk.tsv"
    junk.write_bytes(b"ok line\tpos\n" + b"\xff\xfe\xfa\xfb\tneg\n" * 5)
    with pytest.raises(DataError, match=r"junk.tsv:2: invalid UTF-8 byte at column 1; 5 of 6 lines"):
        read_labelled_text([junk])
    broken = tmp_path / "broken.tsv"
    broken.write_bytes(b"\xff\xfe" + "a\tpos\nb\tneg\n".encode("utf-16-le") + b"\x00\xdc")  # a lone low surrogate
    with pytest.raises(DataError, match=r"broken.tsv:3: starts with a UTF-16-LE byte-order mark"):
        read_labelled_text([broken])


def test_a_label_column_of_garbage_is_refused_a_stray_bad_label_skipped(tmp_path):
    wrong_column = tmp_path / "wrong.tsv"
    wrong_column.write_text("".join(f"pos\tsome text number {i} that goes on/and on\n" for i in range(10)))
    with pytest.raises(DataError, match=r"wrong.tsv:1: label .* path separator; 10 of 10 lines"):
        read_labelled_text([wrong_column])
    one_bad = tmp_path / "one_bad.tsv"
    one_bad.write_text("\n".join(ROWS * 3 + ["odd row\tpo\x01s"]) + "\n")
    table = read_labelled_text([one_bad])
    assert sorted(set(table.labels)) == ["neg", "pos"] and len(table.texts) == 12
    assert table.skipped == [(str(one_bad), 13, "label 'po\\x01s' holds a control character, line break or "
                                                "undecodable byte")]


def test_predict_reads_text_files_the_same_way(tmp_path):
    utf32 = tmp_path / "inputs.txt"
    utf32.write_bytes("héllo there\nsecond line\n".encode("utf-32"))
    assert read_unlabelled_texts(utf32) == [(f"{utf32}:1", "héllo there", None), (f"{utf32}:2", "second line", None)]
    no_mark = tmp_path / "no_mark.txt"
    no_mark.write_bytes("héllo\nthere\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"no_mark.txt:1: holds NUL bytes"):
        read_unlabelled_texts(no_mark)
    stray = tmp_path / "stray.txt"
    stray.write_bytes(b"".join(b"line %d\n" % i for i in range(12)) + b"bad \xff\n")
    rows = read_unlabelled_texts(stray)
    assert len(rows) == 13 and rows[-1] == (f"{stray}:13", None, "invalid UTF-8 byte at column 5")
