"""Multi-label image datasets: each photo with the set of labels it shows, from a CSV or a COCO annotations JSON.

Two formats, both what labelling tools export:
- a CSV of `path,labels`, the labels of one photo separated by `;` (`ants;grass`; empty: none of the labels).
  A first row naming the columns (`path,labels`, `filename,tags`, ...) is a header. Paths are relative to the
  CSV's folder (or absolute); each photo has one row.
- a COCO instances JSON (or the folder holding `annotations.json`): a photo's labels are the categories boxed
  in it; a photo with no box has none. Every entry is checked (dlpipe.data.box_annotations).
Every photo is checked up front: a missing or undecodable file is skipped and reported with its reason, never
fatal; a malformed row stops with one line naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dlpipe.data.class_names import check_class_name
from dlpipe.data.images import DEFAULT_MAX_PIXELS, check_image_file
from dlpipe.data.text_encoding import detect_encoding
from dlpipe.errors import DataError

LABEL_SEPARATOR = ";"
Region = tuple[str, tuple[float, float, float, float]]


@dataclass
class MultiLabelSet:
    """Photos in file order, each with its label names, the dataset's label names, and what was skipped."""

    source: str
    paths: list[str] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    # where each photo's labels are: (label, (x1, y1, x2, y2) as fractions of the photo) per box; None: a CSV (no boxes)
    regions: list[list[Region]] | None = None

    def multi_hot(self) -> np.ndarray:
        """(photos, labels) 0/1 matrix in `class_names` order."""
        return multi_hot(self.labels, self.class_names)


def multi_hot(label_sets: Sequence[Sequence[str]], class_names: Sequence[str]) -> np.ndarray:
    """Label-name sets -> a (n, len(class_names)) int matrix; an unknown name is a DataError naming it."""
    index = {name: i for i, name in enumerate(class_names)}
    out = np.zeros((len(label_sets), len(class_names)), np.int64)
    for row, names in enumerate(label_sets):
        for name in names:
            if name not in index:
                raise DataError(name, f"is not one of the labels {list(class_names)}")
            out[row, index[name]] = 1
    return out


def read_multilabel(path: str | Path, verify: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> MultiLabelSet:
    """Read a CSV (`path,labels`) or a COCO JSON (or its folder); photos that cannot be read are skipped."""
    return _checked(read_label_listing(path), verify, max_pixels)


def read_label_listing(path: str | Path) -> MultiLabelSet:
    """The photos and label names a CSV or COCO file lists, every label name checked, no photo decoded:
    the load stage's check before TensorFlow is imported."""
    source = Path(path)
    if not source.exists():
        raise DataError(str(source), "does not exist; give a CSV of path,labels or a COCO annotations JSON (or its folder)")
    if lists_boxes(source):
        data = _read_coco(source)
    elif source.suffix.lower() in (".csv", ".tsv", ".txt"):
        data = _read_csv(source)
    else:
        raise DataError(str(source), "is neither a .csv of path,labels nor a COCO .json; rename it or convert it")
    return data


def lists_boxes(path: str | Path) -> bool:
    """Whether a label listing holds boxes too: a COCO JSON or its folder (a CSV holds label names only)."""
    source = Path(path)
    return source.is_dir() or source.suffix.lower() == ".json"


HEADER_PATHS = ("path", "file", "filename", "file_name", "image", "image_path", "photo")
HEADER_LABELS = ("labels", "label", "tags", "classes")


def _read_csv(source: Path) -> MultiLabelSet:
    data = MultiLabelSet(str(source))
    raw = source.read_bytes()
    codec, skip = detect_encoding(raw)  # UTF-8, or UTF-16/32 with a byte-order mark
    try:
        text = raw[skip:].decode(codec)
    except UnicodeDecodeError as error:
        raise DataError(str(source), f"is not {codec.upper()} text (byte {error.start + skip}); save it as UTF-8") from None
    first_line: dict[str, int] = {}
    has_labels_column = False
    for number, row in _csv_rows(source, text):
        if len(row) > 2 or not row[0].strip():
            raise DataError(f"{source}:{number}", f"expected 'path,labels' (labels separated by '{LABEL_SEPARATOR}'); "
                                                  f"got {len(row)} fields: {row[:3]}")
        has_labels_column = has_labels_column or len(row) == 2
        labels = _labels_of(source, number, row[1] if len(row) > 1 else "")
        photo = Path(row[0].strip())
        path = str(photo if photo.is_absolute() else source.parent / photo)
        if path in first_line:
            raise DataError(f"{source}:{number}", f"{row[0].strip()} is listed again (first on line {first_line[path]}); "
                                                  f"give each photo one row with all its labels separated by "
                                                  f"'{LABEL_SEPARATOR}'")
        first_line[path] = number
        data.paths.append(path)
        data.labels.append(labels)
    if data.paths and not has_labels_column:
        raise DataError(str(source), "has no labels column; write 'path,labels' rows, the labels of a photo "
                                     f"separated by '{LABEL_SEPARATOR}'")
    data.class_names = sorted({name for labels in data.labels for name in labels})
    return data


def _csv_rows(source: Path, text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row, without a header row; a broken quote names its line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1  # a quoted field may span lines: a row is named by the line it starts on
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as error:
        if "field limit" in str(error):  # an unclosed quote swallows the rest of the file into one field, too
            raise DataError(f"{source}:{start}", f"a field over {csv.field_size_limit():,} characters (the csv "
                                                 "module's limit): close every quote, one photo per row") from None
        raise DataError(f"{source}:{start}", f"is not valid CSV ({error}); quote a field holding a comma "
                                                       'with "..." and close every quote') from None
    if rows and _is_header(rows[0][1]):
        rows = rows[1:]
    return rows


def _is_header(row: list[str]) -> bool:
    """A first row naming the columns (`path,labels`, `filename,tags`, ...), not a photo."""
    cells = [cell.strip().lower() for cell in row]
    return cells[0] in HEADER_PATHS or (len(cells) > 1 and cells[1] in HEADER_LABELS)


def _labels_of(source: Path, number: int, field: str) -> list[str]:
    """The sorted, distinct label names of one labels field (`dress; bag` -> ['bag', 'dress'])."""
    labels = sorted({label.strip() for label in field.split(LABEL_SEPARATOR) if label.strip()})
    for label in labels:
        if any(not char.isprintable() for char in label):
            raise DataError(f"{source}:{number}", f"label {label!r} holds a line break or control character; "
                                                  "a label is one line of text")
        check_class_name(label, f"{source}:{number}", "label", "a label is one line of text, without '/'")
    return labels


def _read_coco(source: Path) -> MultiLabelSet:
    from dlpipe.data.box_annotations import annotations_file, read_coco_annotations

    file = annotations_file(source)
    boxes = read_coco_annotations(file)
    data = MultiLabelSet(str(file), paths=list(boxes.images),
                         labels=[sorted({item.label for item in objects}) for objects in boxes.objects],
                         regions=[[(item.label, (item.box[0] / width, item.box[1] / height, item.box[2] / width,
                                                 item.box[3] / height)) for item in objects]
                                  for objects, (width, height) in zip(boxes.objects, boxes.sizes)])
    categories = json.loads(file.read_text(encoding="utf-8")).get("categories") or []
    data.class_names = sorted({str(category["name"]) for category in categories} | {n for ls in data.labels for n in ls})
    return data


def _checked(data: MultiLabelSet, verify: bool, max_pixels: int) -> MultiLabelSet:
    """Drop photos that are missing or cannot be decoded, recording why; refuse a dataset without labels."""
    kept = MultiLabelSet(data.source, class_names=data.class_names, skipped=list(data.skipped),
                         regions=None if data.regions is None else [])
    for index, (photo, labels) in enumerate(zip(data.paths, data.labels)):
        if not Path(photo).is_file():
            kept.skipped.append((photo, "no such file"))
            continue
        reason, _ = check_image_file(photo, verify, max_pixels)
        if reason:
            kept.skipped.append((photo, reason))
            continue
        kept.paths.append(photo)
        kept.labels.append(labels)
        if kept.regions is not None:
            kept.regions.append(data.regions[index])
    if not kept.paths:
        raise DataError(data.source, "no readable photos; check the paths (relative to the file's folder)")
    if not kept.class_names:
        raise DataError(data.source, "no labels at all; give each photo its labels, separated by ';'")
    return kept
