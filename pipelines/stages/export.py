"""Stage `export`: write the trained model as deployable files, atomically."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require

from dlpipe.pipelines.stage import RunContext, Stage

from dlpipe.pipelines.exporting import FORMATS


@dataclass(frozen=True)
class ExportConfig:
    formats: list[str] = option(["keras", "savedmodel"], "artifacts to write: " + ", ".join(FORMATS)
                                + " (SavedModel takes encoded image bytes or raw strings; TFLite takes pixels or "
                                "token ids, with the vocabulary beside it; tflite-int8 is for image models)")

    def __post_init__(self) -> None:
        for name in self.formats:
            require(name in FORMATS, "formats", f"unknown format {name!r}; choose from {list(FORMATS)}")


class ExportStage(Stage):
    name = "export"
    config_cls = ExportConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models import artifacts
        from dlpipe.pipelines.exporting import export_model

        model = ctx.need("model", "model")
        kind = "text" if ctx.config.pipeline == "sentiment" else "image"
        artifacts.write_labels(ctx.out_dir, ctx.class_names)
        artifacts.write_preprocessing(ctx.out_dir, {"kind": kind, **ctx.preprocessing.to_dict()})
        vocab = getattr(ctx.preprocessing, "vocab_file", None)
        if vocab:  # a WordPiece model needs its vocabulary to tokenise new text
            artifacts.copy_beside(vocab, ctx.out_dir)
        written = []
        for fmt in self.config.formats:
            path = export_model(model, fmt, ctx.out_dir, ctx.class_names, ctx.preprocessing, kind, ctx.train_files[0])
            ctx.artifacts[fmt] = str(path)
            written.append(path.name + ("/" if path.is_dir() else ""))
        return "wrote " + ", ".join(written) if written else "nothing to write"
