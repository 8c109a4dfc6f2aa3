"""Tiny detection scenes written in COCO, Pascal VOC or YOLO: the same photos and boxes whatever the format.

Each scene is a noise background with up to three saturated shapes, one class each (a red square, a green
disc, a blue upright bar), placed without overlap so every box is the shape's exact extent; every fourth
photo (index 3, 7, ...) has none (a negative). Used by the label-format tests and the detect pipeline's;
`write_labels` writes any photos' boxes in any of the formats (the detector's evaluate test converts with it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlpipe.data.box_annotations import BoxLabel

CLASS_NAMES = ["bar", "disc", "square"]  # sorted, so Pascal VOC's sorted names agree with COCO's and YOLO's order
COLOURS = {"bar": (40, 70, 230), "disc": (40, 210, 60), "square": (230, 40, 40)}
FORMATS = ("coco", "voc", "yolo")


def write_box_dataset(folder: Path, fmt: str, n_photos: int = 8, size: int = 64, seed: int = 0,
                      *, flat: bool = False) -> tuple[list[str], list[list[BoxLabel]]]:
    """Write `n_photos` scenes (photo_000.jpg, ...) in `fmt`'s usual layout under `folder`; return the class names
    and each photo's objects in name order (boxes in pixels, as `read_box_annotations` gives them).

    Layouts: coco images/ + annotations.json; voc JPEGImages/ + Annotations/ (an .xml for every photo); yolo
    images/ + labels/ + data.yaml (the first negative has an empty label file, the others none). `flat=True`
    puts VOC's and YOLO's label files beside the photos (YOLO's names then in classes.txt).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}; got {fmt!r}")
    if n_photos < 4:
        raise ValueError(f"n_photos must be at least 4 (photo 3 is the negative); got {n_photos}")
    rng = np.random.default_rng(seed)
    photo_dir = photo_folder(folder, fmt, flat=flat)
    scenes = []
    for index in range(n_photos):
        objects = [] if index % 4 == 3 else _scene_objects(rng, index, size)
        name = f"photo_{index:03d}.jpg"
        _draw(rng, objects, size).save(photo_dir / name, "JPEG", quality=95)
        scenes.append((name, (size, size), objects))
    write_labels(folder, fmt, scenes, CLASS_NAMES, flat=flat)
    return list(CLASS_NAMES), [objects for _, _, objects in scenes]


def photo_folder(folder: Path, fmt: str, *, flat: bool = False) -> Path:
    """Where `fmt`'s usual layout keeps the photos (made if missing): images/, JPEGImages/, or `folder` if flat."""
    photo_dir = Path(folder) if flat else Path(folder) / {"coco": "images", "voc": "JPEGImages", "yolo": "images"}[fmt]
    photo_dir.mkdir(parents=True, exist_ok=True)
    return photo_dir


def write_labels(folder: Path, fmt: str, scenes: list[tuple[str, tuple[int, int], list[BoxLabel]]],
                 class_names: list[str], *, flat: bool = False) -> None:
    """Write `fmt`'s label files for photos already in `photo_folder(folder, fmt)`: each scene is (file name,
    (width, height), objects with boxes in pixels). Converts one set of boxes into every format."""
    writer = {"coco": _write_coco, "voc": _write_voc, "yolo": _write_yolo}[fmt]
    writer(Path(folder), photo_folder(folder, fmt, flat=flat), scenes, list(class_names), flat)


def _scene_objects(rng: np.random.Generator, index: int, size: int) -> list[BoxLabel]:
    """One to three shapes without overlap; the first's class cycles so every class appears in 3 photos."""
    count = int(rng.integers(1, 4))
    labels = [CLASS_NAMES[index % len(CLASS_NAMES)]] + [str(rng.choice(CLASS_NAMES)) for _ in range(count - 1)]
    placed: list[BoxLabel] = []
    for label in labels:
        for _ in range(50):
            side = int(rng.integers(max(6, size // 6), max(8, size // 3)))
            w, h = (max(3, side // 3), side) if label == "bar" else (side, side)
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            box = (float(x), float(y), float(x + w), float(y + h))
            if all(box[2] + 1 < o.box[0] or o.box[2] + 1 < box[0] or box[3] + 1 < o.box[1] or o.box[3] + 1 < box[1]
                   for o in placed):
                placed.append(BoxLabel(label, box))
                break
    return placed


def _draw(rng: np.random.Generator, objects: list[BoxLabel], size: int):
    from PIL import Image, ImageDraw

    pixels = rng.integers(70, 150, size=(size, size, 3)).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        x1, y1, x2, y2 = (int(v) for v in obj.box)
        shape = draw.ellipse if obj.label == "disc" else draw.rectangle
        shape((x1, y1, x2 - 1, y2 - 1), fill=COLOURS[obj.label])  # PIL's corners are inclusive pixels
    return image


def _write_coco(folder: Path, photo_dir: Path, scenes: list, class_names: list[str], flat: bool) -> None:
    images, annotations = [], []
    for image_id, (name, (width, height), objects) in enumerate(scenes, start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": int(obj.crowd),
                                "category_id": class_names.index(obj.label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(document, indent=1))


def _write_voc(folder: Path, photo_dir: Path, scenes: list, class_names: list[str], flat: bool) -> None:
    xml_dir = folder if flat else folder / "Annotations"
    xml_dir.mkdir(parents=True, exist_ok=True)
    for name, (width, height), objects in scenes:
        boxes = "".join(
            f"<object><name>{obj.label}</name><difficult>{int(obj.crowd)}</difficult><bndbox><xmin>{obj.box[0]:g}"
            f"</xmin><ymin>{obj.box[1]:g}</ymin><xmax>{obj.box[2]:g}</xmax><ymax>{obj.box[3]:g}</ymax></bndbox></object>"
            for obj in objects)
        (xml_dir / f"{Path(name).stem}.xml").write_text(
            f"<annotation><folder>{photo_dir.name}</folder><filename>{name}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{boxes}</annotation>\n")


def _write_yolo(folder: Path, photo_dir: Path, scenes: list, class_names: list[str], flat: bool) -> None:
    """YOLO has no crowd flag: a crowd box is written as an ordinary one."""
    label_dir = folder if flat else folder / "labels"
    label_dir.mkdir(parents=True, exist_ok=True)
    if flat:
        (folder / "classes.txt").write_text("".join(f"{name}\n" for name in class_names))
    else:
        (folder / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames:\n" +
                                          "".join(f"  {i}: {name}\n" for i, name in enumerate(class_names)))
    negatives = 0
    for name, (width, height), objects in scenes:
        if not objects:
            negatives += 1
            if negatives > 1:
                continue  # no label file at all: a negative too
        lines = [f"{class_names.index(obj.label)} {(obj.box[0] + obj.box[2]) / 2 / width!r} "
                 f"{(obj.box[1] + obj.box[3]) / 2 / height!r} {(obj.box[2] - obj.box[0]) / width!r} "
                 f"{(obj.box[3] - obj.box[1]) / height!r}\n" for obj in objects]
        (label_dir / f"{Path(name).stem}.txt").write_text("".join(lines))


__all__ = ["CLASS_NAMES", "FORMATS", "photo_folder", "write_box_dataset", "write_labels"]
