"""Stage `load` (sentiment): read labelled sentences and split them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.training.config import FoldOptions
from dlpipe.pipelines.stage import Examples, RunContext, Stage


@dataclass(frozen=True)
class TextLoadConfig(FoldOptions):
    """Which files hold the labelled texts, their columns, and how to split them."""

    path: str | list[str] | None = option(None, "TSV/CSV file(s) of text and label (--data)")
    val_path: str | list[str] | None = option(None, "separate validation file(s), e.g. another domain; then val_split is unused")
    val_split: float = option(0.2, "fraction of each label held out for validation (stratified, seeded)")
    format: Literal["auto", "tsv", "csv"] = option("auto", "auto: .csv is CSV, anything else tab-separated")
    header: bool = option(False, "the first row names the columns")
    text_column: int | str = option(0, "column of the text: a number, or a name with header: true")
    label_column: int | str = option(1, "column of the label: a number, or a name with header: true")
    labels: list[str] | None = option(None, "label values in output order; default: sorted values found")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 < self.val_split < 1.0 or self.val_path is not None, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class TextLoadStage(Stage):
    """Read labelled sentences (TSV/CSV), skipping bad lines with file and line number, and split them."""

    config_cls = TextLoadConfig

    def preflight(self) -> None:
        """Each file's encoding and label column, before TensorFlow is imported (read again in `run`: a few ms)."""
        from dlpipe.data.text import read_labelled_text

        cfg = self.config
        read = dict(fmt=cfg.format, header=cfg.header, text_column=cfg.text_column, label_column=cfg.label_column)
        for paths in (_as_list(cfg.path), _as_list(cfg.val_path)):
            if paths:
                read_labelled_text(paths, **read)

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.split import holdout_split
        from dlpipe.data.text import read_labelled_text
        from dlpipe.errors import ConfigError, DataError

        cfg = self.config
        paths = _as_list(cfg.path)
        if not paths:
            raise ConfigError("load.path", "no dataset given; pass --data FILE (text<TAB>label per line)")
        read = dict(fmt=cfg.format, header=cfg.header, text_column=cfg.text_column, label_column=cfg.label_column)
        table = read_labelled_text(paths, **read)
        val_table = read_labelled_text(_as_list(cfg.val_path), **read) if cfg.val_path else None
        if val_table is not None and set(val_table.labels) - set(table.labels):
            missing = sorted(set(val_table.labels) - set(table.labels))
            raise DataError(", ".join(_as_list(cfg.val_path)),
                            f"validation labels {missing} never occur in the training data (labels there: "
                            f"{sorted(set(table.labels))}); map both files to the same label values")
        found = sorted(set(table.labels) | set(val_table.labels if val_table else []))
        names = list(cfg.labels) if cfg.labels else found
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise DataError(", ".join(paths), f"labels {unknown} are not in load.labels {names}")
        if len(names) < 2:
            raise DataError(", ".join(paths), f"needs at least two different labels, found {names}")
        index = {name: i for i, name in enumerate(names)}
        ctx.class_names = names
        labels = [index[label] for label in table.labels]
        if val_table is not None:
            ctx.train = Examples(table.texts, labels)
            ctx.val = Examples(val_table.texts, [index[label] for label in val_table.labels])
        else:
            train_idx, val_idx = holdout_split(labels, cfg.val_split, cfg.folds, cfg.fold, ctx.seed)
            ctx.train = Examples([table.texts[i] for i in train_idx], [labels[i] for i in train_idx])
            ctx.val = Examples([table.texts[i] for i in val_idx], [labels[i] for i in val_idx])
        skipped = table.skipped + (val_table.skipped if val_table else [])
        for path, line, reason in skipped[:20]:
            ctx.echo(f"  skipped {path} line {line}: {reason}")
        if len(skipped) > 20:
            ctx.echo(f"  ... and {len(skipped) - 20} more skipped lines (see report.json)")
        ctx.report["data"] = {
            "classes": {name: labels.count(i) for i, name in enumerate(names)},
            "train_texts": len(ctx.train),
            "val_texts": len(ctx.val),
            "empty_lines": table.empty_lines + (val_table.empty_lines if val_table else 0),
            "skipped": [{"path": p, "line": n, "reason": r} for p, n, r in skipped],
        }
        return (f"{len(table.texts)} texts, labels {names} ({len(ctx.train)} train / "
                f"{len(ctx.val)} val), {len(skipped)} lines skipped")
