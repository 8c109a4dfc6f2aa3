"""Stage `load` (segment): pair every photo of images/ with its mask in masks/ and split them."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class SegmentLoadConfig:
    """Where the photos and masks are and how to split them."""

    path: str | None = option(None, "dataset folder holding images/ (photos) and masks/ (PNG of class indices per pixel, "
                                    "same file stems, same size; optional classes.txt names the classes) (--data)")
    val_path: str | None = option(None, "separate validation folder laid out the same way; when set, val_split is not used")
    val_split: float = option(0.2, "fraction of the pairs held out for validation (seeded)")
    classes: list[str] | None = option(None, "class names in index order (default: classes.txt, else background, class1, ...)")
    max_images: int | None = option(None, "use at most this many pairs (quick trials)")

    def __post_init__(self) -> None:
        require(0.0 < self.val_split < 1.0 or self.val_path is not None, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")
        require(self.max_images is None or self.max_images > 1, "max_images", "must be at least 2")


class SegmentLoadStage(Stage):
    """Pair every photo of images/ with its mask in masks/, check each pair, and split them (seeded)."""

    config_cls = SegmentLoadConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe.data.masks import scan_mask_folder
        from dlpipe.errors import ConfigError, DataError

        cfg = self.config
        if not cfg.path:
            raise ConfigError("load.path", "no dataset given; pass --data DIR (with images/ and masks/)")
        folder = scan_mask_folder(cfg.path, cfg.classes, max_images=cfg.max_images)
        ctx.class_names = folder.class_names
        if cfg.val_path:
            val = scan_mask_folder(cfg.val_path, folder.class_names)
            ctx.train = Examples(folder.images, targets=folder.masks)
            ctx.val = Examples(val.images, targets=val.masks)
        else:
            order = np.random.default_rng(ctx.seed).permutation(len(folder.images))
            held = max(1, int(round(len(order) * cfg.val_split)))
            if len(order) - held < 1:
                raise DataError(cfg.path, f"{len(order)} pairs are too few to split; add images or give load.val_path")
            val_idx, train_idx = sorted(order[:held]), sorted(order[held:])
            ctx.train = Examples([folder.images[i] for i in train_idx], targets=[folder.masks[i] for i in train_idx])
            ctx.val = Examples([folder.images[i] for i in val_idx], targets=[folder.masks[i] for i in val_idx])
        ctx.report["data"] = {"classes": folder.class_names, "pixels_per_class": folder.pixels_per_class,
                              "train_images": len(ctx.train), "val_images": len(ctx.val)}
        return (f"{len(folder.images)} image/mask pairs, {len(folder.class_names)} classes "
                f"({', '.join(folder.class_names)}), {len(ctx.train)} train / {len(ctx.val)} val")
