"""Stage `load` (image-multilabel): read photos and their label sets (CSV or COCO JSON) and split them."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.training.config import FoldOptions
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class MultiLabelLoadConfig(FoldOptions):
    """Where the labelled photos are and how to split them."""

    path: str | None = option(None, "a CSV of path,labels (labels separated by ';', paths relative to the CSV) or a "
                                    "COCO annotations JSON (a photo's labels: the categories boxed in it), or its folder (--data)")
    val_path: str | None = option(None, "separate validation data in the same format; when set, val_split is not used")
    val_split: float = option(0.2, "fraction held out for validation (stratified by each photo's rarest label, seeded)")
    verify: bool = option(True, "decode every photo once up front so corrupt files are skipped, not fatal")
    max_pixels: int = option(50_000_000, "skip photos with more pixels than this, read from the header before decoding")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 < self.val_split < 1.0 or self.val_path is not None, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")
        require(self.max_pixels > 0, "max_pixels", "must be positive")


class MultiLabelLoadStage(Stage):
    """Read photos with their label sets, set aside unreadable ones with their reason, and split them.

    Each example's label is its multi-hot row (one 0/1 per label, in the order of the sorted label names); from a
    COCO file, its objects are the boxes (label, fractions of the photo) that train.box_supervision learns from.
    """

    config_cls = MultiLabelLoadConfig

    def preflight(self) -> None:
        """The label names of the CSV or COCO file(s), before TensorFlow is imported (photos are checked in `run`)."""
        from dlpipe.data.multilabel import read_label_listing

        for path in (self.config.path, self.config.val_path):
            if path:
                read_label_listing(path)

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.multilabel import multi_hot, read_multilabel
        from dlpipe.errors import ConfigError, DataError

        cfg = self.config
        if not cfg.path:
            raise ConfigError("load.path", "no dataset given; pass --data FILE (a CSV of path,labels or a COCO JSON)")
        data = read_multilabel(cfg.path, cfg.verify, cfg.max_pixels)
        ctx.class_names = data.class_names
        hot = multi_hot(data.labels, data.class_names).tolist()
        skipped = list(data.skipped)
        if cfg.val_path:
            val = read_multilabel(cfg.val_path, cfg.verify, cfg.max_pixels)
            unknown = sorted(set(val.class_names) - set(data.class_names))
            if unknown:
                raise DataError(cfg.val_path, f"validation labels {unknown} never occur in the training data")
            ctx.train = Examples(data.paths, hot, objects=data.regions or [])
            ctx.val = Examples(val.paths, multi_hot(val.labels, data.class_names).tolist(), objects=val.regions or [])
            skipped += val.skipped
        else:
            train_idx, val_idx = _split(hot, cfg, ctx.seed)
            ctx.train, ctx.val = (Examples([data.paths[i] for i in picked], [hot[i] for i in picked],
                                           objects=[data.regions[i] for i in picked] if data.regions else [])
                                  for picked in (train_idx, val_idx))
        for path, reason in skipped:
            ctx.echo(f"  skipped {path}: {reason}")
        counts = {name: sum(row[j] for row in hot) for j, name in enumerate(data.class_names)}
        ctx.report["data"] = {"labels": counts, "photos_without_labels": sum(1 for row in hot if not any(row)),
                              "train_images": len(ctx.train), "val_images": len(ctx.val),
                              "skipped": [{"path": p, "reason": r} for p, r in skipped]}
        return (f"{len(data.paths)} photos, {len(data.class_names)} labels ({', '.join(data.class_names)}); "
                f"{len(ctx.train)} train / {len(ctx.val)} val, {len(skipped)} skipped")


def _split(hot: list[list[int]], cfg: MultiLabelLoadConfig, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation indices, stratified by each photo's rarest label (photos without labels: their own stratum)."""
    from dlpipe.data.split import holdout_split

    totals = [sum(column) for column in zip(*hot)]
    strata = [min((j for j, on in enumerate(row) if on), key=lambda j: totals[j], default=len(totals)) for row in hot]
    return holdout_split(strata, cfg.val_split, cfg.folds, cfg.fold, seed)
