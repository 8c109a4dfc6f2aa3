"""Stage `export`: write the trained model as deployable files, atomically."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require

from dlpipe.pipelines.stage import RunContext, Stage

FORMATS = ("keras", "savedmodel")


@dataclass(frozen=True)
class ExportConfig:
    formats: list[str] = option(list(FORMATS), "artifacts to write: keras (model.keras), savedmodel (savedmodel/)")

    def __post_init__(self) -> None:
        for name in self.formats:
            require(name in FORMATS, "formats", f"unknown format {name!r}; choose from {list(FORMATS)}")


class ExportStage(Stage):
    name = "export"
    config_cls = ExportConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models import artifacts

        model = ctx.need("model", "model")
        kind = "text" if ctx.config.pipeline == "sentiment" else "image"
        preprocessing = {"kind": kind, **ctx.preprocessing.to_dict()} if ctx.preprocessing else {}
        artifacts.write_labels(ctx.out_dir, ctx.class_names)
        vocab = getattr(ctx.preprocessing, "vocab_file", None)
        if vocab:  # a WordPiece model needs its vocabulary to tokenise new text
            artifacts.copy_beside(vocab, ctx.out_dir)
        artifacts.write_preprocessing(ctx.out_dir, preprocessing)
        written = []
        if "keras" in self.config.formats:
            ctx.artifacts["keras"] = str(artifacts.save_keras(model, ctx.out_dir / "model.keras"))
            written.append("model.keras")
        if "savedmodel" in self.config.formats:
            ctx.artifacts["savedmodel"] = str(
                artifacts.export_savedmodel(model, ctx.out_dir / "savedmodel", ctx.class_names, preprocessing)
            )
            written.append("savedmodel/")
        return "wrote " + ", ".join(written) if written else "nothing to write"
