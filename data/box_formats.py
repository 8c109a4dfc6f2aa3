"""Which box label format a path holds: COCO JSON, Pascal VOC XML or YOLO txt, told from the files alone.

Users hand over what their labelling tool exported and should not have to name it; a folder that matches
no layout, or more than one, is refused in one line listing the layouts looked for and how to name the
format (`load.format`). No file is parsed here, only names are looked at, so telling is cheap.
"""

from __future__ import annotations

from pathlib import Path

from dlpipe.data.images import IMAGE_EXTENSIONS
from dlpipe.errors import DataError

FORMATS = ("coco", "voc", "yolo")
VOC_ANNOTATIONS_DIR = "Annotations"
YOLO_LABELS_DIR = "labels"
YOLO_YAML_SUFFIXES = (".yaml", ".yml")
# text files that sit beside YOLO labels without being labels
YOLO_NAMES_FILES = ("classes.txt", "obj.names")
LAYOUTS = ("COCO (a .json file, or a folder with annotations.json or one .json), Pascal VOC (Annotations/*.xml, or "
           ".xml files beside the photos), YOLO (labels/*.txt with images/, .txt files beside the photos, or a "
           "data.yaml)")


def detect_box_format(path: Path) -> str:
    """"coco", "voc" or "yolo" for what `path` holds; a DataError naming the layouts when none or several match."""
    path = Path(path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in YOLO_YAML_SUFFIXES:
            return "yolo"
        raise DataError(str(path), f"is not a box label file dlpipe reads; give one of: {LAYOUTS}")
    found = [fmt for fmt, test in (("coco", _looks_coco), ("voc", _looks_voc), ("yolo", _looks_yolo)) if test(path)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(str(path), f"holds no box labels dlpipe recognises; looked for {LAYOUTS}. Set load.format "
                                   "(coco, voc or yolo) to read it as one of them and be told what is missing")
    raise DataError(str(path), f"holds labels in more than one format ({' and '.join(found)}); set load.format to "
                               "the one to read (coco, voc or yolo), or move the others away")


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def photos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The photos in `folder` (and its sub-folders), sorted; hidden files and folders (.ipynb_checkpoints) skipped."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_photo(p) and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _looks_coco(folder: Path) -> bool:
    return any(not name.name.startswith(".") for name in folder.glob("*.json"))


def _looks_voc(folder: Path) -> bool:
    annotations = folder / VOC_ANNOTATIONS_DIR
    if annotations.is_dir() and any(annotations.glob("*.xml")):
        return True
    return any(not name.name.startswith(".") for name in folder.glob("*.xml"))


def _looks_yolo(folder: Path) -> bool:
    labels = folder / YOLO_LABELS_DIR
    if labels.is_dir() and any(p.name not in YOLO_NAMES_FILES for p in labels.rglob("*.txt")):
        return True
    if any((folder / f"data{suffix}").is_file() for suffix in YOLO_YAML_SUFFIXES):
        return True
    photos = {p.stem for p in folder.iterdir() if is_photo(p)}
    return any(p.stem in photos for p in folder.glob("*.txt") if p.name not in YOLO_NAMES_FILES)


__all__ = ["FORMATS", "LAYOUTS", "VOC_ANNOTATIONS_DIR", "YOLO_LABELS_DIR", "detect_box_format", "is_photo",
           "photos_in"]
