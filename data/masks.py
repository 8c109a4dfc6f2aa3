"""Segmentation data: DIR/images/ photos and DIR/masks/ class-index PNGs with the same file stems.

A mask holds one class index per pixel (mode L or P: a palette PNG stores the indices, whatever
colours it shows), at the photo's own size. Class names come from DIR/classes.txt (one per line,
index order) when present, else background, class1, class2, ... up to the largest index seen.
Problems that make a pair unusable (no mask, another size, an RGB mask, an index past the class
list, an unreadable file) stop loading with one line naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlpipe.errors import DataError

IMAGES_DIR = "images"
MASKS_DIR = "masks"
CLASSES_FILE = "classes.txt"
MASK_MODES = ("L", "P", "1")


@dataclass
class MaskedImages:
    """The usable (photo, mask) pairs of a segmentation folder, and its class names."""

    root: str
    class_names: list[str]
    images: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    pixels_per_class: list[int] = field(default_factory=list)


def mask_array(path: str | Path) -> np.ndarray:
    """A mask PNG's class indices (H, W) uint8; DataError naming the file if it is not a one-channel mask."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in MASK_MODES:
                raise DataError(str(path), f"mask has mode {image.mode}; a mask holds one class index per pixel "
                                           "(a grayscale L or palette P PNG: 0 background, 1, 2, ... the classes)")
            return np.asarray(image.convert("L") if image.mode == "1" else image, np.uint8).copy()
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(str(path), f"mask cannot be read ({error}); write it as a PNG of class indices") from None


def read_mask(path: str | Path, size: int | None = None) -> np.ndarray:
    """Class indices (H, W) uint8, resized to size x size with nearest-neighbour (indices never blend) if given."""
    mask = mask_array(path)
    if size is not None and mask.shape != (size, size):
        import cv2

        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return mask


def scan_mask_folder(root: str | Path, class_names: list[str] | None = None,
                     extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".gif", ".bmp"),
                     max_images: int | None = None) -> MaskedImages:
    """Pair DIR/images/* with DIR/masks/STEM.png and check every pair (size, mode, class indices)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    images_dir, masks_dir = root / IMAGES_DIR, root / MASKS_DIR
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(str(folder), f"missing; a segmentation dataset holds {IMAGES_DIR}/ (photos) and "
                                         f"{MASKS_DIR}/ (class-index PNGs with the same file stems)")
    photos = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in extensions)
    if max_images:
        photos = photos[:max_images]
    if not photos:
        raise DataError(str(images_dir), f"no images ({', '.join(extensions)}) found")
    if class_names is None and (root / CLASSES_FILE).is_file():
        class_names = [line.strip() for line in (root / CLASSES_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    out = MaskedImages(str(root), [])
    counts = np.zeros(256, np.int64)
    largest_in: list[int] = []
    for photo in photos:
        mask_path = masks_dir / f"{photo.stem}.png"
        if not mask_path.is_file():
            raise DataError(str(photo), f"has no mask: expected {mask_path} (a PNG of class indices, same stem)")
        mask = mask_array(mask_path)
        try:
            with Image.open(photo) as image:
                size = image.size
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(str(photo), f"cannot be read as an image ({error}); remove it or its mask") from None
        if (mask.shape[1], mask.shape[0]) != size:
            raise DataError(str(mask_path), f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {photo.name} is "
                                            f"{size[0]}x{size[1]}; a mask must have its image's size")
        counts += np.bincount(mask.ravel(), minlength=256)
        largest_in.append(int(mask.max()))
        out.images.append(str(photo))
        out.masks.append(str(mask_path))
    largest = int(np.nonzero(counts)[0].max())
    if class_names is None:
        class_names = ["background"] + [f"class{i}" for i in range(1, max(largest, 1) + 1)]
    if largest >= len(class_names):
        culprit = next(mask for mask, top in zip(out.masks, largest_in) if top >= len(class_names))
        raise DataError(culprit, f"mask holds class index {largest_in[out.masks.index(culprit)]} but there are only "
                                 f"{len(class_names)} classes ({', '.join(class_names)}); fix the mask or list every "
                                 f"class in {root / CLASSES_FILE}")
    if len(class_names) < 2:
        raise DataError(str(root), f"need at least 2 classes; {CLASSES_FILE} lists {len(class_names)}")
    out.class_names = list(class_names)
    out.pixels_per_class = counts[: len(class_names)].tolist()
    return out
