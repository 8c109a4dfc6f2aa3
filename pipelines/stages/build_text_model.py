"""Stage `model` (sentiment): a recurrent or transformer classifier over raw strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage


@dataclass(frozen=True)
class TextModelConfig:
    architecture: Literal["lstm", "gru", "bilstm", "transformer"] = option(
        "bilstm", "lstm, gru, bilstm (bidirectional LSTM) or transformer (small encoder from scratch)"
    )
    embedding_dim: int = option(64, "token embedding width (transformer: model width)")
    units: int = option(64, "recurrent units per direction")
    num_layers: int = option(1, "stacked recurrent layers or encoder blocks")
    dropout: float = option(0.3, "dropout on inputs of the recurrent cells and before the classifier")
    recurrent_dropout: float = option(0.0, "dropout on the recurrent state (slower: disables fused kernels)")
    num_heads: int = option(4, "transformer attention heads")
    ff_dim: int = option(128, "transformer feed-forward width")

    def __post_init__(self) -> None:
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")
        require(0.0 <= self.recurrent_dropout < 1.0, "recurrent_dropout", "must be in [0, 1)")
        require(self.num_layers >= 1, "num_layers", "must be at least 1")
        require(self.embedding_dim % self.num_heads == 0 or self.architecture != "transformer", "num_heads",
                f"must divide embedding_dim ({self.embedding_dim}). Received: {self.num_heads}")


class TextModelStage(Stage):
    name = "model"
    config_cls = TextModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.text_classifiers import make_vectorizer, recurrent_classifier, transformer_classifier

        cfg = self.config
        prep = ctx.need("preprocessing", "preprocess")
        texts, _ = ctx.need("train_files", "load")
        vectorizer = make_vectorizer(texts, prep.max_tokens, prep.sequence_length, prep.standardize)
        classes = len(ctx.need("class_names", "load"))
        if cfg.architecture == "transformer":
            ctx.model = transformer_classifier(vectorizer, classes, prep.sequence_length, cfg.embedding_dim,
                                               cfg.num_heads, cfg.ff_dim, cfg.num_layers, cfg.dropout)
        else:
            ctx.model = recurrent_classifier(vectorizer, classes, cfg.architecture, cfg.embedding_dim, cfg.units,
                                             cfg.num_layers, cfg.dropout, cfg.recurrent_dropout)
        return (f"{cfg.architecture}, vocabulary {vectorizer.vocabulary_size():,}, "
                f"{ctx.model.count_params():,} parameters, {classes} classes")
