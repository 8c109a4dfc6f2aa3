"""YOLO txt boxes: a .txt per photo, a line `class cx cy w h` per box, the four numbers fractions of the photo.

Layouts, as Ultralytics and LabelImg write them: `images/` + `labels/` with the same relative paths
(images/train/a.jpg -> labels/train/a.txt), the .txt files beside the photos, or a data.yaml whose `train`
names the photos (a folder, a list of them, or a .txt listing photos; relative to its `path`). Class
numbers are positions in the dataset's names: data.yaml's `names` (a list or {index: name}), else
classes.txt (one a line, line 1 = class 0; in the folder or in labels/), else the `classes` given. A photo
without a label file, or with an empty one, has nothing to find (a negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlpipe.data.box_annotations import AnnotatedImages, BoxLabel, clipped_box, parse_number, photo_size
from dlpipe.data.box_formats import YOLO_LABELS_DIR, YOLO_NAMES_FILES, YOLO_YAML_SUFFIXES, photos_in
from dlpipe.data.class_names import check_class_name
from dlpipe.errors import DataError, brief

IMAGES_DIR = "images"
MAX_TEXT_BYTES = 10_000_000  # a label or names file is a few KB
BOX_FORM = "a YOLO line is `class cx cy w h`, the four numbers fractions (0-1) of the photo's width and height"


def read_yolo_annotations(path: str | Path, classes: Sequence[str] | None = None) -> AnnotatedImages:
    """Read and check a YOLO folder (or its data.yaml); photos sorted by path, negatives included.

    Class names are `classes` when given (a box of another class is refused), else the dataset's names.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "does not exist; give a YOLO folder (images/ + labels/) or its data.yaml")
    root = path.parent if path.is_file() else path
    config_file = path if path.is_file() else next((root / f"data{s}" for s in YOLO_YAML_SUFFIXES
                                                    if (root / f"data{s}").is_file()), None)
    config = _read_yaml(config_file) if config_file else {}
    from_config = path.is_file() or (config_file is not None and not (root / IMAGES_DIR).is_dir())
    if from_config:
        photos = _train_photos(config_file, config)
    else:
        folder = root / IMAGES_DIR if (root / IMAGES_DIR).is_dir() else root
        photos = photos_in(folder, recursive=folder != root)
    if not photos:
        raise DataError(str(path), f"holds no photos (looked in {IMAGES_DIR}/ and beside the labels); add them, or "
                                   "set load.format if this is not a YOLO dataset")
    names, names_from = _names(root, config_file, config, classes)
    base = _base(config_file, config) if from_config else root
    allowed = set(classes) if classes is not None else None
    out = AnnotatedImages(str(config_file or root), class_names=list(classes) if classes is not None else names)
    for photo in photos:
        label_file = label_path(photo, base)
        size = photo_size(photo, f"fix it or remove it{' and ' + label_file.name if label_file.is_file() else ''}")
        objects = _read_labels(label_file, size, names, names_from, allowed) if label_file.is_file() else []
        out.images.append(str(photo))
        out.objects.append(objects)
    return out


def label_path(photo: Path, root: Path) -> Path:
    """Ultralytics' rule, inside the dataset's `root`: the last `images` folder of the photo's path becomes
    `labels`, the suffix .txt (a photo with no `images` folder has its label beside it)."""
    try:
        parts = list(photo.relative_to(root).parts)
    except ValueError:  # a photo a train list names outside the dataset's folder
        root, parts = Path(), list(photo.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == IMAGES_DIR:
            parts[index] = YOLO_LABELS_DIR
            break
    return root.joinpath(*parts).with_suffix(".txt")


def _read_labels(file: Path, size: tuple[int, int], names: list[str], names_from: str,
                 allowed: set[str] | None) -> list[BoxLabel]:
    objects = []
    width, height = size
    for number, line in enumerate(_read_text(file).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        entry = f"line {number} ({brief(line.strip())})"
        if len(fields) != 5:
            polygon = len(fields) >= 7 and len(fields) % 2 == 1
            raise DataError(str(file), f"{entry} has {len(fields)} fields, not 5; {BOX_FORM}" +
                            ("; this looks like a segmentation polygon: export boxes (YOLO detection) instead"
                             if polygon else ""))
        values = [_number(file, entry, text) for text in fields]
        index = int(values[0])
        if index != values[0] or index < 0:
            raise DataError(str(file), f"{entry}: the class {fields[0]!r} is not a whole number 0-{len(names) - 1}")
        if index >= len(names):
            raise DataError(str(file), f"{entry}: class {index} is not among the {len(names)} names in {names_from} "
                                       f"(0-{len(names) - 1}); add its name there or fix the line")
        label = names[index]
        if allowed is not None and label not in allowed:
            raise DataError(str(file), f"{entry}: class {index} is {label!r}, not one of the classes given "
                                       f"({brief(sorted(allowed))}); add it to load.classes or remove the line")
        cx, cy, w, h = values[1:]
        if not all(0.0 <= v <= 1.0 for v in values[1:]):
            raise DataError(str(file), f"{entry}: the numbers are not fractions of the photo; {BOX_FORM} (pixels "
                                       "must be divided by the photo's size)")
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        objects.append(BoxLabel(label, clipped_box(str(file), entry, box, size, BOX_FORM)))
    return objects


def _number(file: Path, entry: str, text: str) -> float:
    value = parse_number(text)
    if value is None:
        raise DataError(str(file), f"{entry}: {text!r} is not a number; {BOX_FORM}")
    return value


def _names(root: Path, config_file: Path | None, config: dict[str, Any],
           classes: Sequence[str] | None) -> tuple[list[str], str]:
    """The class names a class number indexes, and the file they came from."""
    found: list[tuple[list[str], str]] = []
    if "names" in config:
        found.append((_yaml_names(config_file, config["names"]), str(config_file)))
        if config.get("nc") is not None and config["nc"] != len(found[0][0]):
            raise DataError(str(config_file), f"says nc: {brief(config['nc'])} but names {len(found[0][0])} classes; "
                                              "make them agree (or drop nc)")
    for candidate in (root / folder / name for folder in ("", YOLO_LABELS_DIR) for name in YOLO_NAMES_FILES):
        if candidate.is_file() and len(found) < 2:
            lines = _read_text(candidate).splitlines()
            while lines and not lines[-1].strip():
                lines.pop()
            found.append(([line.strip() for line in lines], str(candidate)))
    if len(found) == 2 and found[0][0] != found[1][0]:
        raise DataError(found[1][1], f"names {brief(found[1][0])} but {found[0][1]} names {brief(found[0][0])}; "
                                     "keep one list of class names, or make them agree")
    if not found:
        if classes is None:
            raise DataError(str(root), "has YOLO labels, which number their classes, but no names: write classes.txt "
                                       "(one name a line, line 1 = class 0) or data.yaml's names, or give load.classes")
        return list(classes), "load.classes"
    names, source = found[0]
    for number, name in enumerate(names):
        if not name:
            raise DataError(source, f"class {number} has an empty name; one class name a line, line 1 = class 0")
        check_class_name(name, source, f"class {number}'s name", "rename it")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(source, f"names {repeated} more than once; list each class once")
    return names, source


def _yaml_names(file: Path | None, names: Any) -> list[str]:
    if isinstance(names, dict):
        names = {int(key) if isinstance(key, str) and key.strip().isdigit() else key: name
                 for key, name in names.items()}
        if not all(isinstance(key, int) for key in names) or sorted(names) != list(range(len(names))):
            raise DataError(str(file), f"names' keys {brief(sorted(names, key=str))} must be the class numbers "
                                       f"0-{len(names) - 1}")
        names = [names[index] for index in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(name, (str, int)) for name in names):
        raise DataError(str(file), f"names must be a list of class names or {{number: name}}; got {brief(names)}")
    return [str(name).strip() for name in names]


def _train_photos(config_file: Path, config: dict[str, Any]) -> list[Path]:
    """The photos data.yaml's `train` names: folders (searched in full) or .txt files listing photos."""
    base = _base(config_file, config)
    entries = config.get("train")
    entries = [entries] if isinstance(entries, str) else entries
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise DataError(str(config_file), f"train must name the training photos (a folder, a list of folders or a "
                                          f".txt listing photos); got {brief(config.get('train'))}")
    photos: list[Path] = []
    for entry in entries:
        where = base / entry
        if not where.exists() and entry.startswith("../"):
            where = base / entry[3:]  # Roboflow writes train: ../train/images beside data.yaml
        if where.is_dir():
            photos += photos_in(where, recursive=True)
        elif where.is_file() and where.suffix.lower() == ".txt":
            listed = [line.strip() for line in _read_text(where).splitlines() if line.strip()]
            photos += [Path(line) if Path(line).is_absolute() else where.parent / line for line in listed]
        else:
            raise DataError(str(config_file), f"train names {entry!r}, which is not a folder or a .txt list under "
                                              f"{base}; fix train (or path)")
    missing = next((photo for photo in photos if not photo.is_file()), None)
    if missing is not None:
        raise DataError(str(missing), f"listed in {config_file.name}'s train but missing; add the photo or remove it")
    return photos


def _base(config_file: Path, config: dict[str, Any]) -> Path:
    """data.yaml's `path` (the dataset's folder), relative to the file; the file's folder without one."""
    base = config.get("path") or "."
    if not isinstance(base, str):
        raise DataError(str(config_file), f"path must be the dataset's folder; got {brief(base)}")
    return Path(base) if Path(base).is_absolute() else config_file.parent / base


def _read_yaml(file: Path) -> dict[str, Any]:
    """data.yaml as a dict; anchors and aliases are refused (no data.yaml needs them, and they can expand a
    small file into a huge value)."""
    import yaml

    text = _read_text(file)
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise DataError(str(file), "uses YAML aliases (*name); write the values out")
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DataError(str(file), f"is not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(document, dict):
        raise DataError(str(file), "must be a mapping with names (class names) and train (the photos)")
    return document


def _read_text(file: Path) -> str:
    if file.stat().st_size > MAX_TEXT_BYTES:
        raise DataError(str(file), f"is over {MAX_TEXT_BYTES // 1_000_000} MB, which no YOLO label file is; remove it")
    try:
        return file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(str(file), "is not UTF-8 text; save it as UTF-8") from None


__all__ = ["label_path", "read_yolo_annotations"]
