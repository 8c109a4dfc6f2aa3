"""Stage `load` (image-classify): index a class-per-folder dataset and split it."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.training.config import FoldOptions
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class ImageLoadConfig(FoldOptions):
    """Where the images are and how to split them."""

    path: str | None = option(None, "dataset folder with one sub-folder of images per class, or builtin:NAME "
                                    "(fashion-mnist, mnist-5k, digits, mnist: their fixed train/test split) (--data)")
    val_path: str | None = option(None, "separate validation folder; when set, val_split is not used")
    val_split: float = option(0.2, "fraction of each class held out for validation (stratified, seeded)")
    extensions: list[str] = option([".jpg", ".jpeg", ".png", ".gif", ".bmp"], "file suffixes to read")
    verify: bool = option(True, "decode every file once up front so corrupt files are skipped, not fatal")
    max_per_class: int | None = option(None, "use at most this many images per class (quick trials; a builtin: set, "
                                                       "in both of its splits)")
    max_pixels: int = option(50_000_000, "skip images with more pixels than this, read from the header before decoding")
    exclude: str | None = option(None, "file of paths to leave out: a doctor.csv written by `dlpipe doctor` (its path "
                                       "column) or a text file with one path per line")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 < self.val_split < 1.0 or self.val_path is not None, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")
        require(self.max_per_class is None or self.max_per_class > 0, "max_per_class", "must be positive")
        require(self.max_pixels > 0, "max_pixels", "must be positive")


class ImageLoadStage(Stage):
    """Index a class-per-folder dataset, set aside unreadable files with their reason, and split it (stratified)."""

    config_cls = ImageLoadConfig

    def preflight(self) -> None:
        """Class folder names (no line breaks, control characters or separators) and load.exclude, before TensorFlow
        is imported."""
        from dlpipe.data.builtin_datasets import is_builtin
        from dlpipe.data.class_names import check_class_folders

        for path in (self.config.path, self.config.val_path):
            if path and not is_builtin(path):
                check_class_folders(path)
        if self.config.exclude:  # a missing or unreadable list fails here, not after the model is built
            from dlpipe.data.exclude_list import read_exclude_list

            read_exclude_list(self.config.exclude)

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.builtin_datasets import builtin_folders, is_builtin
        from dlpipe.data.exclude_list import drop_excluded, read_exclude_list
        from dlpipe.data.images import scan_image_folder
        from dlpipe.data.split import holdout_split
        from dlpipe.errors import ConfigError, DataError

        cfg = self.config
        if not cfg.path:
            raise ConfigError("load.path", "no dataset given; pass --data DIR (one sub-folder of images per class)")
        extensions = tuple(cfg.extensions)
        path, val_path, verify, names = cfg.path, cfg.val_path, cfg.verify, None
        if is_builtin(cfg.path):  # its own test split validates; the files are ours, so no need to verify them
            builtin = builtin_folders(cfg.path, max_per_class=cfg.max_per_class)
            path, val_path, verify, names = str(builtin.train), str(builtin.test), False, list(builtin.class_names)
            ctx.report["split"] = builtin.split
        excluded = read_exclude_list(cfg.exclude) if cfg.exclude else set()
        folder = scan_image_folder(path, extensions, verify, cfg.max_per_class, cfg.max_pixels)
        folder.paths, folder.labels, dropped = drop_excluded(folder.paths, folder.labels, excluded)
        skipped, notes = list(folder.skipped), list(folder.notes)
        ctx.class_names = names or folder.class_names
        if val_path:
            val = scan_image_folder(val_path, extensions, verify, max_pixels=cfg.max_pixels)
            val.paths, val.labels, val_dropped = drop_excluded(val.paths, val.labels, excluded)
            dropped += val_dropped
            if val.class_names != folder.class_names:
                raise DataError(val_path, f"validation classes {val.class_names} differ from training classes {folder.class_names}")
            ctx.train = Examples(folder.paths, folder.labels)
            ctx.val = Examples(val.paths, val.labels)
            skipped += val.skipped
            notes += val.notes
        else:
            train_idx, val_idx = holdout_split(folder.labels, cfg.val_split, cfg.folds, cfg.fold, ctx.seed)
            ctx.train = Examples([folder.paths[i] for i in train_idx], [folder.labels[i] for i in train_idx])
            ctx.val = Examples([folder.paths[i] for i in val_idx], [folder.labels[i] for i in val_idx])
        for issue in skipped:
            ctx.echo(f"  skipped {issue.path}: {issue.reason}")
        for issue in notes:
            ctx.echo(f"  note: {issue.path}: {issue.reason}")
        ctx.report["data"] = {
            "classes": folder.class_counts(),
            "train_images": len(ctx.train),
            "val_images": len(ctx.val),
            "skipped": [{"path": i.path, "reason": i.reason} for i in skipped],
            "excluded": dropped,
            "notes": [{"path": i.path, "note": i.reason} for i in notes],
        }
        return (
            f"{len(folder.paths)} images in {len(folder.class_names)} classes "
            f"({len(ctx.train)} train / {len(ctx.val)} val), {len(skipped)} skipped"
            + (f", {dropped} excluded by {cfg.exclude}" if cfg.exclude else "")
        )
