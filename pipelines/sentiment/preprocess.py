"""Stage `preprocess` (sentiment): normalisation, vocabulary and padding, inside the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage


@dataclass(frozen=True)
class TextPreprocessConfig:
    """Normalisation, vocabulary size and sequence length."""

    lowercase: bool = option(True, "lower-case before tokenising")
    strip_punctuation: bool = option(True, "drop punctuation before tokenising")
    tokenizer: Literal["words", "wordpiece"] = option(
        "wordpiece", "words: TextVectorization inside the model (whole words; a word outside the vocabulary is [UNK]); "
                 "wordpiece: MiniLM's WordPiece subwords, pruned to max_tokens pieces (every single character kept, "
                 "so no word is lost), ids fed to the model. minilm and mpnet always use their own full WordPiece vocabularies")
    max_tokens: int = option(8000, "vocabulary size (words: the most frequent training words, the rest map to [UNK]; "
                                   "wordpiece: pieces kept; 6,000 pieces lost 3.6 points amazon->yelp, words want "
                                   "about 16,000)")
    sequence_length: int = option(48, "tokens per text: longer texts are truncated, shorter padded")

    def __post_init__(self) -> None:
        require(self.max_tokens >= 10, "max_tokens", f"must be at least 10. Received: {self.max_tokens}")
        require(self.sequence_length >= 2, "sequence_length", f"must be at least 2. Received: {self.sequence_length}")


class TextPreprocessStage(Stage):
    """Fix the tokenisation spec (the vocabulary itself is learnt by the model's TextVectorization layer)."""

    config_cls = TextPreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.text import TextPreprocessing, text_dataset
        from dlpipe.models.text_tokenizers import tokenizer_named

        cfg = self.config
        ctx.preprocessing = TextPreprocessing(cfg.max_tokens, cfg.sequence_length, cfg.lowercase, cfg.strip_punctuation,
                                              tokenizer=cfg.tokenizer)
        train = ctx.need("train", "load")
        ctx.train_data = text_dataset(train.inputs, train.labels)
        ctx.val_data = text_dataset(ctx.val.inputs, ctx.val.labels)
        lengths = sorted(len(text.split()) for text in train.inputs)
        p95 = lengths[int(0.95 * (len(lengths) - 1))]
        tokens = tokenizer_named(cfg.tokenizer).describe(ctx.preprocessing)
        return f"{tokens}, {cfg.sequence_length} tokens (95% of training texts have <= {p95} words)"
