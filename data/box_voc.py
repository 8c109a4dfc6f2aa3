"""Pascal VOC XML boxes: one .xml per photo, as LabelImg, CVAT and Label Studio export them.

Each file names its photo (<filename>), the photo's <size> (width, height) and an <object> per box:
<name>, <bndbox> (xmin, ymin, xmax, ymax, read as the photo's pixel edges, as CVAT and Label Studio write
them) and <difficult>. A difficult object is kept like COCO's iscrowd: a detection on it neither counts
nor is penalised. The layout is `Annotations/*.xml` with the photos in `JPEGImages/` (or `images/`), or
the .xml files beside the photos. A photo there that no .xml names has nothing to find (a negative), as a
YOLO photo without a label file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from dlpipe.data.box_annotations import AnnotatedImages, BoxLabel, clipped_box, parse_number, photo_size
from dlpipe.data.box_formats import VOC_ANNOTATIONS_DIR, photos_in
from dlpipe.data.class_names import check_class_name
from dlpipe.errors import DataError, brief

PHOTO_DIRS = ("JPEGImages", "images")
MAX_XML_BYTES = 10_000_000  # a VOC file is a few KB; a larger one is not an annotation
BOX_FORM = "VOC boxes are xmin, ymin, xmax, ymax in the photo's pixels"
FLAGS = {"": False, "0": False, "false": False, "1": True, "true": True}


def read_voc_annotations(path: str | Path, classes: Sequence[str] | None = None) -> AnnotatedImages:
    """Read and check every .xml of a VOC folder; photos sorted by path, negatives included.

    Class names are `classes` (an object of another class is refused) or the names found, sorted.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(str(root), "is not a folder; give the Pascal VOC folder (Annotations/*.xml, or .xml files "
                                   "beside the photos)")
    annotations = root / VOC_ANNOTATIONS_DIR
    xml_dir = annotations if annotations.is_dir() and any(annotations.glob("*.xml")) else root
    files = sorted(p for p in xml_dir.glob("*.xml") if not p.name.startswith("."))
    if not files:
        raise DataError(str(root), f"holds no .xml files (looked in {VOC_ANNOTATIONS_DIR}/ and in the folder); "
                                   "export Pascal VOC from the labelling tool, or set load.format")
    photo_dirs = [root] if xml_dir == root else [root / name for name in PHOTO_DIRS if (root / name).is_dir()] or [xml_dir]
    photos = _PhotoIndex(photo_dirs)
    allowed = set(classes) if classes is not None else None
    labelled: dict[str, list[BoxLabel]] = {}
    named_by: dict[str, Path] = {}
    for file in files:
        photo, objects = _read_file(file, photos, allowed, classes)
        if str(photo) in named_by:
            raise DataError(str(file), f"names photo {photo.name}, which {named_by[str(photo)].name} names too; "
                                       "keep one .xml per photo")
        named_by[str(photo)], labelled[str(photo)] = file, objects
    for photo in photos.all():
        labelled.setdefault(str(photo), [])  # in the photo folder without an .xml: nothing to find
    out = AnnotatedImages(str(root))
    for photo in sorted(labelled):
        out.images.append(photo)
        out.objects.append(labelled[photo])
    names = {obj.label for objects in out.objects for obj in objects}
    out.class_names = list(classes) if classes is not None else sorted(names)
    return out


class _PhotoIndex:
    """The photos of the photo folders, found by file name or by stem (an .xml named after its photo)."""

    def __init__(self, folders: list[Path]):
        self.folders = folders
        self.photos = [photo for folder in folders for photo in photos_in(folder)]
        self.by_name = {p.name: p for p in reversed(self.photos)}
        self.by_stem = {p.stem: p for p in reversed(self.photos)}

    def all(self) -> list[Path]:
        return self.photos

    def find(self, file: Path, filename: str | None) -> Path:
        """The photo `file` is about: its <filename> beside it or in a photo folder, else one named like `file`."""
        if filename:
            for folder in (file.parent, *self.folders):
                for candidate in (folder / filename, folder / Path(filename).name):
                    if candidate.is_file():
                        return candidate
        found = self.by_stem.get(file.stem) if not filename else None
        if found is not None:
            return found
        where = ", ".join(f"{folder.name}/" for folder in self.folders if folder != file.parent)
        shown = f"names photo {filename!r}" if filename else f"has no <filename> and no photo is named {file.stem}.*"
        raise DataError(str(file), f"{shown}, which is missing (looked beside it{' and in ' + where if where else ''})"
                                   f"; add the photo or remove {file.name}")


def _read_file(file: Path, photos: _PhotoIndex, allowed: set[str] | None,
               classes: Sequence[str] | None) -> tuple[Path, list[BoxLabel]]:
    """One VOC file -> its photo and the photo's objects, each checked."""
    root = _parse(file)
    filename = (root.findtext("filename") or "").strip() or None
    photo = photos.find(file, filename)
    size = photo_size(photo, f"fix it or remove {file.name}")
    stated = (_number(file, "size/width", root.findtext("size/width"), optional=True),
              _number(file, "size/height", root.findtext("size/height"), optional=True))
    if None not in stated and 0 not in stated and stated != size:  # 0 x 0: the tool did not know the size
        raise DataError(str(file), f"says its photo is {stated[0]:g}x{stated[1]:g} but {photo.name} is "
                                   f"{size[0]}x{size[1]}; its boxes would be in another photo's pixels: fix <size> "
                                   "or the photo")
    objects = []
    for number, element in enumerate(root.findall("object"), start=1):
        name = (element.findtext("name") or "").strip()
        if not name:
            raise DataError(str(file), f"object {number} has no <name>; name its class or remove the object")
        check_class_name(name, str(file), f"object {number}'s name", "rename it in the .xml")
        if allowed is not None and name not in allowed:
            raise DataError(str(file), f"object {number} is a {name!r}, not one of the classes given "
                                       f"({brief(list(classes or []))}); add it to load.classes or rename it")
        corners = [_number(file, f"object {number} ({name}): bndbox/{edge}", element.findtext(f"bndbox/{edge}"))
                   for edge in ("xmin", "ymin", "xmax", "ymax")]
        box = clipped_box(str(file), f"object {number} ({name}): bndbox {' '.join(f'{v:g}' for v in corners)}",
                          tuple(corners), size, BOX_FORM)
        objects.append(BoxLabel(name, box, _difficult(file, number, element.findtext("difficult"))))
    return photo, objects


def _parse(file: Path) -> ElementTree.Element:
    if file.stat().st_size > MAX_XML_BYTES:
        raise DataError(str(file), f"is over {MAX_XML_BYTES // 1_000_000} MB, which no Pascal VOC file is; remove it")
    try:
        root = ElementTree.parse(file).getroot()
    except ElementTree.ParseError as error:
        raise DataError(str(file), f"is not well-formed XML ({error}); fix it or remove it") from None
    if root.tag != "annotation":
        raise DataError(str(file), f"is not a Pascal VOC annotation (its root is <{root.tag}>, not <annotation>); "
                                   "remove it or set load.format")
    return root


def _number(file: Path, entry: str, text: str | None, optional: bool = False) -> float | None:
    """The number in an element's text; a missing or malformed one is refused naming the element."""
    if text is None or not text.strip():
        if optional:
            return None
        raise DataError(str(file), f"{entry} is missing; {BOX_FORM}")
    value = parse_number(text)
    if value is None:
        raise DataError(str(file), f"{entry} is {text.strip()!r}, not a number; {BOX_FORM}")
    return value


def _difficult(file: Path, number: int, text: str | None) -> bool:
    flag = (text or "").strip().lower()
    if flag not in FLAGS:
        raise DataError(str(file), f"object {number}: <difficult> is {brief(flag)}, not 0 or 1")
    return FLAGS[flag]


__all__ = ["read_voc_annotations"]
