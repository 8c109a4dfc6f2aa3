"""Stage `load` (detect): photos and their boxes from COCO JSON, Pascal VOC XML or YOLO txt, split (seeded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, RunContext, Stage
from dlpipe.pipelines.training.config import FoldOptions


@dataclass(frozen=True)
class DetectLoadConfig(FoldOptions):
    """Where the photos and boxes are and how to split them."""

    path: str | None = option(None, "labelled photos (--data): a COCO instances JSON or its folder, a Pascal VOC "
                                    "folder (one .xml per photo) or a YOLO folder (images/ + labels/ .txt)")
    format: Literal["auto", "coco", "voc", "yolo"] = option(
        "auto", "label format; auto tells them apart by what path holds")
    classes: list[str] | None = option(None, "class names in index order (default: what the labels name: COCO's "
                                             "categories, YOLO's classes.txt or data.yaml, VOC's names sorted)")
    val_path: str | None = option(None, "separate validation photos laid out the same way; when set, val_split is not used")
    val_split: float = option(0.2, "fraction of the photos held out for validation (seeded)")
    max_images: int | None = option(None, "use at most this many photos (quick trials)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 < self.val_split < 1.0 or self.val_path is not None or self.folds, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")
        require(self.max_images is None or self.max_images > 1, "max_images", "must be at least 2")


class DetectLoadStage(Stage):
    """Read and check every photo and box (one line naming the file and entry for each problem), then split."""

    config_cls = DetectLoadConfig

    def preflight(self) -> None:
        """Read and check every label and photo header before TensorFlow starts: a bad entry is one line in a second."""
        self.labelled()

    def labelled(self):
        """The photos and boxes at load.path, read once per stage."""
        from dlpipe.errors import ConfigError

        if not self.config.path:
            raise ConfigError("load.path", "no dataset given; pass --data PATH (COCO JSON, Pascal VOC or YOLO folder)")
        if getattr(self, "_labelled", None) is None:
            self._labelled = read_labelled(self.config.path, self.config.format, self.config.classes)
        return self._labelled

    def run(self, ctx: RunContext) -> str:
        cfg = self.config
        found = self.labelled()
        ctx.class_names = list(found.class_names)
        photos, objects = found.images[:cfg.max_images], found.objects[:cfg.max_images]
        if cfg.val_path:
            val = read_labelled(cfg.val_path, cfg.format, ctx.class_names)
            ctx.train, ctx.val = Examples(photos, objects=objects), Examples(val.images, objects=val.objects)
        else:
            train_idx, val_idx = holdout(len(photos), cfg.val_split, cfg.folds, cfg.fold, ctx.seed, cfg.path)
            ctx.train = Examples([photos[i] for i in train_idx], objects=[objects[i] for i in train_idx])
            ctx.val = Examples([photos[i] for i in val_idx], objects=[objects[i] for i in val_idx])
        boxes = {name: 0 for name in ctx.class_names}
        for photo in objects:
            for obj in photo:
                boxes[obj.label] += 1
        negatives = sum(1 for photo in objects if not photo)
        ctx.report["data"] = {"classes": ctx.class_names, "boxes_per_class": boxes, "photos": len(photos),
                              "photos_without_boxes": negatives, "train_images": len(ctx.train),
                              "val_images": len(ctx.val), "source": found.source}
        return (f"{len(photos)} photos ({negatives} without boxes), {sum(boxes.values())} boxes in "
                f"{len(ctx.class_names)} classes ({', '.join(f'{k} {v}' for k, v in boxes.items())}), "
                f"{len(ctx.train)} train / {len(ctx.val)} val")


def read_labelled(path: str, fmt: str, classes: list[str] | None):
    """The photos and boxes at `path` in any supported format, with the class names in index order."""
    from dlpipe.data.box_annotations import read_box_annotations

    from dlpipe.errors import DataError

    found = read_box_annotations(path, fmt, classes)
    if not found.class_names:
        raise DataError(str(path), "names no class; a detector needs at least one labelled class")
    return found


def holdout(count: int, val_split: float, folds: int, fold: int, seed: int, source: str) -> tuple[list[int], list[int]]:
    """(train, validation) indices: fold `fold` of a seeded permutation dealt into `folds`, else the first
    val_split of it."""
    import numpy as np

    from dlpipe.errors import DataError

    order = np.random.default_rng(seed).permutation(count)
    if folds:
        held = set(order[fold::folds].tolist())
    else:
        held = set(order[:max(1, int(round(count * val_split)))].tolist())
    if count - len(held) < 1:
        raise DataError(source, f"{count} photos are too few to split; add photos or give load.val_path")
    return [i for i in range(count) if i not in held], sorted(held)
