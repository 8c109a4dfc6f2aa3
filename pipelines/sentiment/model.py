"""Stage `model` (sentiment): a recurrent or transformer classifier over raw strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import FineTuning, RunContext, Stage, TrainingDefaults

# the pretrained embedding is one layer, no blocks: unfreezing it unfreezes all of it
EMBEDDING_BLOCKS = r"^(embedding)$"
ENCODER_BLOCKS = r"^(layer_\d+)$"  # a pretrained encoder's transformer blocks (its embeddings count as the stem)
PRETRAINED_ENCODERS = ("minilm", "mpnet")


@dataclass(frozen=True)
class TextModelConfig:
    """The text network: architecture and its sizes."""

    architecture: Literal["lstm", "gru", "bilstm", "transformer", "minilm", "mpnet"] = option(
        "gru", "lstm, gru, bilstm (bidirectional LSTM), transformer (small encoder from scratch), "
        "minilm (pretrained all-MiniLM-L6-v2, fine-tuned) or mpnet (pretrained all-mpnet-base-v2, fine-tuned: "
        "the most accurate on another site's reviews, 0.96 against MiniLM's 0.91, at about 8x the training time "
        "and a 440 MB float32 .tflite; the set-up fetches it, else bash scripts/fetch_mpnet.sh)"
    )
    embedding_dim: int = option(128, "token embedding width (transformer: model width)")
    units: int = option(64, "recurrent units per direction")
    num_layers: int = option(1, "stacked recurrent layers or encoder blocks")
    dropout: float | None = option(None, "dropout before the classifier and on recurrent inputs; default 0.3 for "
                                         "recurrent models, 0.1 for transformer, minilm and mpnet (inside the encoder too)")
    recurrent_dropout: float = option(0.0, "dropout on the recurrent state (slower: disables fused kernels)")
    num_heads: int = option(4, "transformer attention heads")
    ff_dim: int = option(128, "transformer feed-forward width")
    embeddings: Literal["minilm", "none"] = option(
        "minilm", "token vectors the lstm/gru/bilstm/transformer start from: minilm (all-MiniLM-L6-v2's WordPiece "
                  "embedding table: with preprocess.tokenizer=words a word = the mean of its pieces, the vocabulary "
                  "the training words + MiniLM's whole words; with wordpiece each piece has its own row) or none "
                  "(learnt from scratch). Pretrained vectors are PCA-projected to embedding_dim, frozen during "
                  "train.epochs and fine-tuned during train.finetune_epochs (see freeze_pretrained)")
    freeze_pretrained: bool | None = option(
        None, "train the head first with the pretrained part frozen (MiniLM's or MPNet's encoder, or the pretrained embedding "
              "table) for train.epochs at train.learning_rate, then all of it for train.finetune_epochs at "
              "learning_rate * finetune_lr_factor; false trains everything from the start. Default: true for the "
              "pretrained embeddings, false for minilm and mpnet")

    def __post_init__(self) -> None:
        require(self.dropout is None or 0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")
        require(0.0 <= self.recurrent_dropout < 1.0, "recurrent_dropout", "must be in [0, 1)")
        require(self.num_layers >= 1, "num_layers", "must be at least 1")
        require(self.embedding_dim % self.num_heads == 0 or self.architecture != "transformer", "num_heads",
                f"must divide embedding_dim ({self.embedding_dim}). Received: {self.num_heads}")
        require(self.embedding_dim <= 384 or self.embeddings == "none" or self.architecture in PRETRAINED_ENCODERS,
                "embedding_dim", f"must be at most 384 (MiniLM's width) with embeddings=minilm. Received: {self.embedding_dim}")


class TextModelStage(Stage):
    """Build a classifier over raw strings (vectorizer inside the model) or fine-tune pretrained MiniLM or MPNet.

    Recommends training defaults to the train stage (`ctx.training_defaults`):
    each architecture has its own learning rate; the pretrained encoders warm-up and AdamW.
    """

    config_cls = TextModelConfig

    @classmethod
    def option_notes(cls, config) -> list[str]:
        """Each architecture's size with these options, and where its weights come from."""
        from dlpipe.models.text_catalog import architecture_catalog

        model, prep = config["model"], config["preprocess"]
        rows = architecture_catalog(prep.max_tokens, model.embedding_dim, model.units, model.num_layers, model.ff_dim,
                                    prep.sequence_length, model.embeddings, tokenizer=prep.tokenizer)
        return [f"architectures with these options (vocabulary preprocess.max_tokens {prep.tokenizer}; measured files "
                "in BENCHMARKS.md):",
                *(f"  {row.line()}" for row in rows)]

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.text_classifiers import recurrent_classifier, transformer_classifier
        from dlpipe.models.text_tokenizers import tokenizer_named

        cfg = self.config
        prep = ctx.need("preprocessing", "preprocess")
        texts = ctx.need("train", "load").inputs
        classes = len(ctx.need("class_names", "load"))
        if cfg.architecture in PRETRAINED_ENCODERS:
            return self._pretrained_encoder(ctx, classes)
        ctx.training_defaults = TrainingDefaults(learning_rate=1e-3 if cfg.architecture == "transformer" else 2e-3)
        tokenizer = tokenizer_named(prep.tokenizer)
        tokens = tokenizer.training_tokens(texts, prep, ctx.out_dir,
                                           cfg.embedding_dim if cfg.embeddings == "minilm" else None)
        vectorizer, weights = tokens.source, tokens.weights
        if tokenizer.ids_fed:  # the model takes ids: encode both splits once, with the runtime's encoder
            _tokenise_splits(ctx, tokens.prep)
        if cfg.architecture == "transformer":
            ctx.model = transformer_classifier(vectorizer, classes, prep.sequence_length, cfg.embedding_dim,
                                               cfg.num_heads, cfg.ff_dim, cfg.num_layers, self._dropout(0.1), weights)
        else:
            ctx.model = recurrent_classifier(vectorizer, classes, cfg.architecture, cfg.embedding_dim, cfg.units,
                                             cfg.num_layers, self._dropout(0.3), cfg.recurrent_dropout, weights)
        source = "random embeddings"
        if weights is not None:
            source = f"{cfg.embeddings} embeddings"
            if self._freeze(True):
                # pretrained rows: the train stage's first phase keeps them frozen, `finetune_epochs` unfreezes them
                ctx.model.get_layer("embedding").trainable = False
                ctx.fine_tuning = FineTuning("embedding", EMBEDDING_BLOCKS)
                source += " (frozen first)"
        return (f"{cfg.architecture}, vocabulary {vectorizer.vocabulary_size():,} "
                f"{tokenizer.unit}, {source}, "
                f"{ctx.model.count_params():,} parameters, {classes} classes")

    def _pretrained_encoder(self, ctx: RunContext, classes: int) -> str:
        """MiniLM or MPNet reads WordPiece ids of its own vocabulary: tokenise the splits here, in the same code
        predict uses."""
        from dlpipe.models import minilm, mpnet, text_classifiers
        from dlpipe.models.text_tokenizers import WordPieceTextTokenizer

        name = self.config.architecture
        vocab_file, build, source, rate = {
            "minilm": (minilm.minilm_files, text_classifiers.minilm_classifier, "all-MiniLM-L6-v2", 5e-5),
            # 2e-5 (sentence-transformers' own fine-tuning rate) scored 0.962 / 0.964 across review sites
            "mpnet": (mpnet.mpnet_files, text_classifiers.mpnet_classifier, "all-mpnet-base-v2", 2e-5),
        }[name]
        prep = _tokenise_splits(ctx, WordPieceTextTokenizer().for_encoder(ctx.preprocessing, vocab_file()[1]))
        ctx.model = build(classes, prep.sequence_length, dropout=self._dropout(0.1))
        # fine-tuning recipe for a pretrained transformer: small rate, warm-up, then decay
        ctx.training_defaults = TrainingDefaults(optimizer="adamw", learning_rate=rate, warmup_fraction=0.1)
        recipe = "fine-tuned whole"
        if self._freeze(False):
            # linear probe, then fine-tuning (LP-FT): a trained head before the encoder moves keeps more of
            # what pretraining learnt, which is what text from another domain needs
            ctx.model.get_layer("backbone").trainable = False
            ctx.fine_tuning = FineTuning("backbone", ENCODER_BLOCKS)
            ctx.training_defaults = TrainingDefaults(optimizer="adamw", learning_rate=5e-4, warmup_fraction=0.1)
            recipe = "head first, then fine-tuned"
        return f"{name} (pretrained {source}, {recipe}; its own full WordPiece vocabulary replaces preprocess's), {ctx.model.count_params():,} parameters, {classes} classes"

    def _freeze(self, default: bool) -> bool:
        return self.config.freeze_pretrained if self.config.freeze_pretrained is not None else default

    def _dropout(self, default: float) -> float:
        return self.config.dropout if self.config.dropout is not None else default


def _tokenise_splits(ctx: RunContext, prep) -> object:
    """Make `prep` (a spec whose model takes ids, with its vocabulary file) the run's preprocessing and tokenise
    both splits with it, in the same code predict, serving and TFLite use; returns `prep`."""
    from dlpipe.data.text import encoded_text_dataset
    from dlpipe.models.text_tokenizers import make_text_encoder

    ctx.preprocessing = prep
    encode = make_text_encoder(prep, prep.vocab_file)
    ctx.train_data = encoded_text_dataset(encode, ctx.train.inputs, ctx.train.labels)
    ctx.val_data = encoded_text_dataset(encode, ctx.val.inputs, ctx.val.labels)
    return prep
