"""Box annotations for scoring a detector: COCO's instances JSON, checked in full before any model runs.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlpipe.data.class_names import check_class_name
from dlpipe.errors import DataError

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
    """Photos in file order with their objects (an empty list: a photo with nothing to find)."""

    source: str
    images: list[str] = field(default_factory=list)
    objects: list[list[BoxLabel]] = field(default_factory=list)


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


def read_coco_annotations(path: str | Path) -> AnnotatedImages:
    """Read and check a COCO instances file; every problem stops with one line naming the file and the entry."""
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
        objects[image_id].append(BoxLabel(names[category], _box(source, where, annotation.get("bbox"), images[image_id]),
                                          bool(annotation.get("iscrowd", 0))))
    out = AnnotatedImages(str(source))
    for image_id, photo in paths.items():
        out.images.append(photo)
        out.objects.append(objects[image_id])
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
    from PIL import Image, UnidentifiedImageError

    sizes: dict[Any, tuple[int, int]] = {}
    paths: dict[Any, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise DataError(str(source), f"image {entry!r} needs an id and a file_name")
        if entry["id"] in paths:
            raise DataError(str(source), f"image id {entry['id']!r} appears twice in images")
        photo = _find_photo(source, entry["file_name"])
        try:
            with Image.open(photo) as image:
                size = image.size
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(str(photo), f"cannot be read as an image ({error}); fix it or remove its entry from "
                                        f"{source.name}") from None
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
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               and math.isfinite(v) for v in bbox)):
        raise DataError(str(source), f"{where}: bbox {bbox!r} must be [x, y, width, height] in pixels")
    x, y, width, height = (float(v) for v in bbox)
    if width <= 0 or height <= 0:
        raise DataError(str(source), f"{where}: bbox {bbox!r} has no area (width and height must be positive)")
    if x + width < 0 or y + height < 0 or x > size[0] or y > size[1]:
        raise DataError(str(source), f"{where}: bbox {bbox!r} lies outside its {size[0]}x{size[1]} photo; COCO boxes "
                                     "are x, y, width, height in the photo's pixels")
    return (x, y, x + width, y + height)


__all__ = ["ANNOTATIONS_FILE", "AnnotatedImages", "BoxLabel", "annotations_file", "read_coco_annotations"]
