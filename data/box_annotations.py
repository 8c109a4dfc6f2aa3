"""Box annotations for training and scoring a detector, checked in full before any model runs.

`read_box_annotations` reads the three formats labelling tools export (COCO instances JSON, Pascal VOC XML
in `data/box_voc.py`, YOLO txt in `data/box_yolo.py`; which one is told from what the path holds, see
`data/box_formats.py`) into one `AnnotatedImages`. The checks every format shares live here, so a photo
that cannot be read, a box with no area or a box outside its photo reads the same whatever the format.
Boxes that spill over the photo's edge (labelling tools let a drag overshoot) are clipped to the photo.

COCO's format is what labelling tools (CVAT, Label Studio, Roboflow) export and what published
detection numbers are measured on: `images` (id, file_name, width, height), `annotations`
(image_id, category_id, bbox as x, y, width, height in the photo's pixels, iscrowd) and
`categories` (id, name). Categories are matched to a model's labels by name, so a file's own
category ids need not be COCO's. Each `file_name` is looked for beside the JSON, then in an
`images/` folder beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlpipe.data.class_names import check_class_name
from dlpipe.errors import ConfigError, DataError, brief

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class BoxLabel:
    """One annotated object: its label, its box (x1, y1, x2, y2 in the photo's pixels), whether it is a crowd."""

    label: str
    box: tuple[float, float, float, float]
    crowd: bool = False


@dataclass
class AnnotatedImages:
    """Photos in file order with their objects (an empty list: a photo with nothing to find), and the dataset's
    class names in a stable order (a model's class index is a position in this list)."""

    source: str
    images: list[str] = field(default_factory=list)
    objects: list[list[BoxLabel]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) per photo, where the reader knows it


def annotations_file(path: str | Path) -> Path:
    """The JSON to read: `path` itself, or the folder's annotations.json (or its only .json file)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / ANNOTATIONS_FILE).is_file():
            return path / ANNOTATIONS_FILE
        found = sorted(path.glob("*.json"))
        if len(found) == 1:
            return found[0]
        reason = f"holds {len(found)} .json files" if found else "holds no .json file"
        raise DataError(str(path), f"{reason}; give the COCO annotations file itself, or name it {ANNOTATIONS_FILE}")
    raise DataError(str(path), "does not exist; give a COCO annotations JSON (or its folder) for a detection model")


def read_box_annotations(path: str | Path, fmt: str = "auto", classes: Sequence[str] | None = None) -> AnnotatedImages:
    """Photos and boxes from COCO JSON, a Pascal VOC folder or a YOLO folder (or its data.yaml), checked in full.

    `fmt` is "auto" (told from what `path` holds), "coco", "voc" or "yolo". `classes`, when given, are the
    class names in the model's order: the result's `class_names`, and an object of any other class is refused
    (a YOLO class number is still read through the dataset's own names file, when it has one).
    """
    from dlpipe.data.box_formats import FORMATS, detect_box_format

    if fmt not in ("auto", *FORMATS):
        raise ConfigError("load.format", f"must be auto, {', '.join(FORMATS)}; got {fmt!r}")
    names = checked_classes(classes)
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "does not exist; give a COCO JSON, a Pascal VOC folder or a YOLO folder")
    fmt = detect_box_format(path) if fmt == "auto" else fmt
    if fmt == "coco":
        return read_coco_annotations(path, names)
    if fmt == "voc":
        from dlpipe.data.box_voc import read_voc_annotations

        return read_voc_annotations(path, names)
    from dlpipe.data.box_yolo import read_yolo_annotations

    return read_yolo_annotations(path, names)


def checked_classes(classes: Sequence[str] | None) -> list[str] | None:
    """`classes` as a list of distinct, well-formed names (None when not given)."""
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(name, str) for name in classes) or not classes:
        raise ConfigError("load.classes", f"must be a non-empty list of class names; got {brief(classes)}")
    names = [name.strip() for name in classes]
    for name in names:
        check_class_name(name, "load.classes", "class name", "give one line of text per class")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError("load.classes", f"names {repeated} more than once; list each class once")
    return names


def read_coco_annotations(path: str | Path, classes: Sequence[str] | None = None) -> AnnotatedImages:
    """Read and check a COCO instances file; every problem stops with one line naming the file and the entry.

    Class names are the categories in file order, or `classes` (then a box of another category is refused).
    """
    source = annotations_file(path)
    try:
        document = json.loads(source.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(str(source), f"is not a UTF-8 JSON file ({error}); a detector is scored on COCO's "
                                     "instances JSON") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list)
                                                 for key in ("images", "annotations", "categories")):
        raise DataError(str(source), 'is not COCO instances JSON: it needs the lists "images", "annotations" and '
                                     '"categories"')
    names = _categories(source, document["categories"])
    allowed = set(classes) if classes is not None else None
    images, paths = _images(source, document["images"])
    objects: dict[Any, list[BoxLabel]] = {image_id: [] for image_id in images}
    for index, annotation in enumerate(document["annotations"]):
        where = f'annotation {annotation.get("id", index) if isinstance(annotation, dict) else index}'
        if not isinstance(annotation, dict):
            raise DataError(str(source), f"{where} is not an object")
        image_id, category = annotation.get("image_id"), annotation.get("category_id")
        if image_id not in images:
            raise DataError(str(source), f"{where} names image_id {image_id!r}, which no entry of images has")
        if category not in names:
            raise DataError(str(source), f"{where} names category_id {category!r}, which no entry of categories has")
        if allowed is not None and names[category] not in allowed:
            raise DataError(str(source), f"{where} is a {names[category]!r}, not one of the classes given "
                                         f"({brief(classes)}); add it to load.classes or remove the annotation")
        objects[image_id].append(BoxLabel(names[category], _box(source, where, annotation.get("bbox"), images[image_id]),
                                          bool(annotation.get("iscrowd", 0))))
    out = AnnotatedImages(str(source), class_names=list(classes) if classes is not None else
                          list(dict.fromkeys(names.values())))
    for image_id, photo in paths.items():
        out.images.append(photo)
        out.objects.append(objects[image_id])
        out.sizes.append(images[image_id])
    if not out.images:
        raise DataError(str(source), "lists no images")
    return out


def _categories(source: Path, entries: list[Any]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("name"), str):
            raise DataError(str(source), f"category {entry!r} needs an id and a name")
        names[entry["id"]] = entry["name"].strip()
        check_class_name(names[entry["id"]], str(source), "category name", "rename it in the file's categories")
    return names


def _images(source: Path, entries: list[Any]) -> tuple[dict[Any, tuple[int, int]], dict[Any, str]]:
    """image id -> (width, height) as the file says, checked against the photo; image id -> the photo's path."""
    sizes: dict[Any, tuple[int, int]] = {}
    paths: dict[Any, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise DataError(str(source), f"image {entry!r} needs an id and a file_name")
        if entry["id"] in paths:
            raise DataError(str(source), f"image id {entry['id']!r} appears twice in images")
        photo = _find_photo(source, entry["file_name"])
        size = photo_size(photo, f"fix it or remove its entry from {source.name}")
        stated = (entry.get("width"), entry.get("height"))
        if stated != (None, None) and tuple(stated) != size:
            raise DataError(str(photo), f"is {size[0]}x{size[1]} but {source.name} says {stated[0]}x{stated[1]}; its "
                                        "boxes would be in another photo's pixels: fix width/height or the photo")
        sizes[entry["id"]], paths[entry["id"]] = size, str(photo)
    return sizes, paths


def _find_photo(source: Path, file_name: str) -> Path:
    for folder in (source.parent, source.parent / IMAGES_DIR):
        if (folder / file_name).is_file():
            return folder / file_name
    raise DataError(str(source.parent / file_name), f"named in {source.name} but missing (looked beside it and in "
                                                    f"{IMAGES_DIR}/); add the photo or remove its entry")


def _box(source: Path, where: str, bbox: Any, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """COCO's [x, y, width, height] -> (x1, y1, x2, y2), refused if it is not four finite numbers with a real area."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        raise DataError(str(source), f"{where}: bbox {bbox!r} must be [x, y, width, height] in pixels")
    x, y, width, height = (float(v) for v in bbox)
    return clipped_box(str(source), f"{where}: bbox {bbox!r}", (x, y, x + width, y + height), size,
                       "COCO boxes are [x, y, width, height] in the photo's pixels")


# --- checks every format shares -------------------------------------------------------------------
def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not text)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_number(text: str | None) -> float | None:
    """The finite number `text` spells (labels in XML and text files), or None."""
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def photo_size(photo: Path, fix: str) -> tuple[int, int]:
    """The photo's (width, height) from its header; a photo that cannot be read stops naming it and `fix`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(photo) as image:
            return image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise DataError(str(photo), f"cannot be read as an image ({error}); {fix}") from None


def clipped_box(file: str, entry: str, box: tuple[float, float, float, float], size: tuple[int, int],
                form: str) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) in pixels clipped to the photo; refused when it has no area, or no area inside the photo.

    `entry` names the box in `file` (an annotation id, an object, a line), `form` says how the format writes
    boxes, so each message says what to fix.
    """
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise DataError(file, f"{entry} has no area (its right edge must lie right of its left, its bottom below "
                              f"its top); {form}: fix or remove it")
    width, height = size
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
        raise DataError(file, f"{entry} lies outside its {width}x{height} photo; {form}: fix or remove it")
    return clipped


__all__ = ["ANNOTATIONS_FILE", "AnnotatedImages", "BoxLabel", "annotations_file", "checked_classes", "clipped_box",
           "is_number", "parse_number", "photo_size", "read_box_annotations", "read_coco_annotations"]
