"""Stage `model` (sentiment): a recurrent or transformer classifier over raw strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage, TrainingDefaults, register_stage


@dataclass(frozen=True)
class TextModelConfig:
    """The text network: architecture and its sizes."""

    architecture: Literal["lstm", "gru", "bilstm", "transformer", "minilm"] = option(
        "bilstm", "lstm, gru, bilstm (bidirectional LSTM), transformer (small encoder from scratch) "
        "or minilm (pretrained all-MiniLM-L6-v2, fine-tuned)"
    )
    embedding_dim: int = option(64, "token embedding width (transformer: model width)")
    units: int = option(64, "recurrent units per direction")
    num_layers: int = option(1, "stacked recurrent layers or encoder blocks")
    dropout: float | None = option(None, "dropout before the classifier and on recurrent inputs; default 0.3 for "
                                         "recurrent models, 0.1 for transformer and minilm (inside the encoder too)")
    recurrent_dropout: float = option(0.0, "dropout on the recurrent state (slower: disables fused kernels)")
    num_heads: int = option(4, "transformer attention heads")
    ff_dim: int = option(128, "transformer feed-forward width")

    def __post_init__(self) -> None:
        require(self.dropout is None or 0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")
        require(0.0 <= self.recurrent_dropout < 1.0, "recurrent_dropout", "must be in [0, 1)")
        require(self.num_layers >= 1, "num_layers", "must be at least 1")
        require(self.embedding_dim % self.num_heads == 0 or self.architecture != "transformer", "num_heads",
                f"must divide embedding_dim ({self.embedding_dim}). Received: {self.num_heads}")


@register_stage("text", "model")
class TextModelStage(Stage):
    """Build a classifier over raw strings (vectorizer inside the model) or fine-tune pretrained MiniLM.

    Recommends training defaults to the train stage (`ctx.training_defaults`):
    each architecture has its own learning rate, MiniLM warm-up and AdamW.
    """

    config_cls = TextModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.text_classifiers import make_vectorizer, recurrent_classifier, transformer_classifier

        cfg = self.config
        prep = ctx.need("preprocessing", "preprocess")
        texts = ctx.need("train", "load").inputs
        classes = len(ctx.need("class_names", "load"))
        if cfg.architecture == "minilm":
            return self._minilm(ctx, classes)
        ctx.training_defaults = TrainingDefaults(learning_rate=1e-3 if cfg.architecture == "transformer" else 2e-3)
        vectorizer = make_vectorizer(texts, prep.max_tokens, prep.sequence_length, prep.standardize)
        if cfg.architecture == "transformer":
            ctx.model = transformer_classifier(vectorizer, classes, prep.sequence_length, cfg.embedding_dim,
                                               cfg.num_heads, cfg.ff_dim, cfg.num_layers, self._dropout(0.1))
        else:
            ctx.model = recurrent_classifier(vectorizer, classes, cfg.architecture, cfg.embedding_dim, cfg.units,
                                             cfg.num_layers, self._dropout(0.3), cfg.recurrent_dropout)
        return (f"{cfg.architecture}, vocabulary {vectorizer.vocabulary_size():,}, "
                f"{ctx.model.count_params():,} parameters, {classes} classes")

    def _minilm(self, ctx: RunContext, classes: int) -> str:
        """The pretrained encoder reads WordPiece ids: tokenise the splits here, in the same code predict uses."""
        import dataclasses

        from dlpipe.data.text import encoded_text_dataset, make_text_encoder
        from dlpipe.models.minilm import minilm_files
        from dlpipe.models.text_classifiers import minilm_classifier

        prep = dataclasses.replace(ctx.preprocessing, tokenizer="wordpiece", vocab_file=str(minilm_files()[1]))
        ctx.preprocessing = prep
        encode = make_text_encoder(prep, prep.vocab_file)  # the tokenisation predict, serving and TFLite use
        ctx.train_data = encoded_text_dataset(encode, ctx.train.inputs, ctx.train.labels)
        ctx.val_data = encoded_text_dataset(encode, ctx.val.inputs, ctx.val.labels)
        ctx.model = minilm_classifier(classes, prep.sequence_length, dropout=self._dropout(0.1))
        # fine-tuning recipe for a pretrained transformer: small rate, warm-up, then cosine decay
        ctx.training_defaults = TrainingDefaults(optimizer="adamw", learning_rate=5e-5, warmup_fraction=0.1)
        return f"minilm (pretrained all-MiniLM-L6-v2), {ctx.model.count_params():,} parameters, {classes} classes"

    def _dropout(self, default: float) -> float:
        return self.config.dropout if self.config.dropout is not None else default
