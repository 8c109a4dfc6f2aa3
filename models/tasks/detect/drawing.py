"""Photos with their detected boxes drawn (`dlpipe predict --draw DIR`), with Pillow.

The boxes are in the pixels of the decoded photo (as TensorFlow decodes it:
EXIF orientation is not applied), so the photo is drawn as decoded too. A
drawing goes to DIR/<the input's path>, made relative (a leading "/" or ".."
becomes a folder name), as JPEG: two photos of the same name in different
folders do not overwrite each other, and a resumed job rewrites the same files.
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any, Sequence

from dlpipe import atomic


def drawing_path(source: str | Path, folder: str | Path) -> Path:
    """Where the drawing of `source` goes under `folder`: its path made relative, suffix .jpg."""
    parts = [("_up" if part == ".." else part) for part in Path(source).parts if part not in ("/", ".", "")]
    relative = Path(*parts) if parts else Path("image")
    return Path(folder) / relative.with_suffix(".jpg")


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable, saturated colour per label (hash of the name -> hue)."""
    hue = (sum(ord(c) * 31 ** i for i, c in enumerate(label)) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_boxes(source: str | Path, boxes: Sequence[dict[str, Any]], folder: str | Path) -> Path:
    """Draw each {"label", "score", "box": [x1, y1, x2, y2]} on the photo at `source`; returns the file written."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(source) as opened:
        image = opened.convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(image.size) / 40)))
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    for item in boxes:
        x1, y1, x2, y2 = (float(v) for v in item["box"])
        colour = label_colour(str(item["label"]))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = f"{item['label']} {float(item['score']):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        ty = y1 - (bottom - top) - 2 * width if y1 - (bottom - top) - 2 * width >= 0 else y1
        draw.rectangle([x1, ty, x1 + (right - left) + 2 * width, ty + (bottom - top) + 2 * width], fill=colour)
        draw.text((x1 + width, ty + width - (top - y1)), text, fill=(0, 0, 0), font=font)
    target = drawing_path(source, folder)
    with atomic.replacing_file(target) as tmp:
        image.save(tmp, format="JPEG", quality=90)
    return target
