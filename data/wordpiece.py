"""Pure-Python BERT uncased WordPiece tokenizer.

Why it exists: the MiniLM sentence encoder needs the exact token ids the model
was trained with, and the reference tokenizers (HF `transformers` /
`tokenizers`) are heavy or pull torch. This module reproduces
`BertTokenizer(do_lower_case=True)` and the model's `tokenizer.json`
(BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template) with the
standard library only, plus numpy for the output arrays.

Pipeline for one text, in the same order as HF:
  1. literal special tokens ("[CLS]", "[MASK]", ...) are split out and kept whole;
  2. cleaning: NUL, U+FFFD and control characters dropped, whitespace -> " ";
  3. spaces put around CJK ideographs, so each one is its own word;
  4. whitespace split; each word lower-cased and accent-stripped (NFD, drop Mn);
  5. split on punctuation (Unicode P* plus the ASCII symbol ranges);
  6. greedy longest-match-first WordPiece with "##" continuations; a word longer
     than 100 characters or with no full segmentation becomes [UNK].

Two framings share these rules (`SpecialTokens`): BERT's [CLS] ... [SEP] padded
with [PAD] (MiniLM), and RoBERTa's <s> ... </s> padded with <pad> (MPNet, whose
vocab.txt is BERT's uncased one behind <s>, <pad>, </s>, <unk>). The vocabulary
says which: `special_tokens_of`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.errors import DataError

MAX_CHARS_PER_WORD = 100
_CACHE_LIMIT = 200_000  # words; bounded so a huge corpus cannot grow memory without limit


@dataclass(frozen=True)
class SpecialTokens:
    """The vocabulary entries that frame, pad and stand in for a text, and those kept whole when a text spells them."""

    cls: str
    sep: str
    pad: str
    unk: str
    literal: tuple[str, ...]  # the tokenizer.json's added tokens: "[CLS]" in a text stays one token


BERT_TOKENS = SpecialTokens("[CLS]", "[SEP]", "[PAD]", "[UNK]", ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
# MPNet's tokenizer.json: RobertaProcessing with <s>/</s>, padding <pad>, WordPiece's unknown piece [UNK]
MPNET_TOKENS = SpecialTokens("<s>", "</s>", "<pad>", "[UNK]", ("<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"))
SPECIAL_TOKENS = BERT_TOKENS.literal  # the BERT set, for callers that predate MPNet


def special_tokens_of(vocab: dict[str, int]) -> SpecialTokens:
    """MPNet's framing for a vocabulary that starts <s>, <pad>, </s> (as MPNet's and RoBERTa's do), else BERT's."""
    if all(vocab.get(token) == index for index, token in enumerate(("<s>", "<pad>", "</s>"))):
        return MPNET_TOKENS
    return BERT_TOKENS


def _is_whitespace(char: str) -> bool:
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    # Cc/Cf/Co/Cs, as the Rust `tokenizers` BertNormalizer (tokenizer.json) does; it keeps
    # unassigned code points (Cn), which then end up in [UNK]. The Python BasicTokenizer of
    # transformers < 5 dropped Cn as well; sentence-transformers uses the Rust one.
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(char: str) -> bool:
    # BERT counts all non-letter/number ASCII as punctuation (e.g. "$", "^", "`"),
    # even where Unicode calls them symbols.
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    # The "CJK Unified Ideographs" blocks only: Hangul and kana are written with
    # spaces and stay in words, as in the original BERT. 0x2B920 (not 0x2B820) is what
    # the Rust `tokenizers` BertNormalizer uses, and thus what this model's tokenizer.json does.
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _clean_and_space_cjk(text: str) -> str:
    out = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            continue
        if _is_whitespace(char):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {char} ")
        else:
            out.append(char)
    return "".join(out)


def _strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for char in word:
        if _is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


class WordPieceTokenizer:
    """Uncased WordPiece tokenizer: text -> [CLS] pieces [SEP] ids padded with [PAD] (or MPNet's <s>/</s>/<pad>)."""

    def __init__(self, vocab: dict[str, int], lowercase: bool = True, source: str = "<vocab>"):
        self.special = special_tokens_of(vocab)
        missing = [t for t in self.special.literal if t not in vocab]
        if missing:
            raise DataError(source, f"vocabulary lacks the special tokens {missing}; use a BERT (or MPNet) vocab.txt")
        self.vocab = vocab
        self.lowercase = lowercase
        self.pad_id = vocab[self.special.pad]
        self.unk_id = vocab[self.special.unk]
        self.cls_id = vocab[self.special.cls]
        self.sep_id = vocab[self.special.sep]
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in self.special.literal) + ")")
        self._cache: dict[str, list[int]] = {}
        self._id_to_token: list[str] | None = None

    @classmethod
    def from_vocab_file(cls, path: str | Path, lowercase: bool = True) -> "WordPieceTokenizer":
        """Read a BERT `vocab.txt` (one token a line; the line number is the id)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(str(path), "vocab file not found; pass the vocab.txt that belongs to the model")
        with path.open(encoding="utf-8") as fh:
            tokens = [line.rstrip("\n").rstrip("\r") for line in fh]
        if tokens and tokens[-1] == "":
            tokens.pop()
        vocab: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            vocab.setdefault(tok, i)  # first occurrence wins, as in HF load_vocab
        return cls(vocab, lowercase=lowercase, source=str(path))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # -- text -> pieces -------------------------------------------------------------------------

    def _basic_words(self, text: str) -> list[str]:
        words: list[str] = []
        for word in _clean_and_space_cjk(text).split():
            if self.lowercase:
                word = _strip_accents(word.lower())
            words.extend(_split_punctuation(word))
        return words

    def _word_ids(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids = self._wordpiece(word)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_id]
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def token_ids(self, text: str) -> list[int]:
        """Ids of one text without [CLS]/[SEP], truncation or padding."""
        ids: list[int] = []
        for i, part in enumerate(self._special_re.split(text)):
            if i % 2 == 1:  # a literal special token, kept whole like HF added tokens
                ids.append(self.vocab[part])
            elif part:
                for word in self._basic_words(part):
                    ids.extend(self._word_ids(word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text (for inspection and debugging)."""
        if self._id_to_token is None:
            inverse = [""] * (max(self.vocab.values()) + 1)
            for tok, i in self.vocab.items():
                if not inverse[i]:
                    inverse[i] = tok
            self._id_to_token = inverse
        return [self._id_to_token[i] for i in self.token_ids(text)]

    # -- batch encoding ---------------------------------------------------------------------------

    def encode(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        """Encode texts to fixed-length int32 arrays, the model's input format.

        Each row is [CLS] ids [SEP] (MPNet: <s> ids </s>), truncated so it fits
        `max_length` (the [SEP] is kept) and right-padded with the padding id. Returns `input_ids`, `attention_mask`
        (1 for real tokens) and `token_type_ids` (all 0: single sentences), each
        of shape (len(texts), max_length).
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not one string")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 to hold [CLS] and [SEP], got {max_length}")
        n = len(texts)
        input_ids = np.full((n, max_length), self.pad_id, dtype=np.int32)
        attention_mask = np.zeros((n, max_length), dtype=np.int32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {row} is {type(text).__name__}, expected str")
            ids = [self.cls_id] + self.token_ids(text)[: max_length - 2] + [self.sep_id]
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros((n, max_length), dtype=np.int32),
        }


def bert_framing_remap(vocab: dict[str, int]) -> dict[int, int]:
    """Ids a BERT-framing runtime feeds -> the ids this vocabulary's model was trained on.

    MediaPipe's BertTokenizer always frames a text with [CLS] ... [SEP]; MPNet's vocabulary holds those
    entries too but its model reads <s> ... </s>. Empty for a BERT vocabulary (nothing to map).
    """
    special = special_tokens_of(vocab)
    pairs = ((BERT_TOKENS.cls, special.cls), (BERT_TOKENS.sep, special.sep))
    return {vocab[theirs]: vocab[ours] for theirs, ours in pairs if theirs != ours and theirs in vocab}
