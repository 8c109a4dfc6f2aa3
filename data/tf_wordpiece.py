"""In-graph BERT uncased WordPiece tokenizer (TensorFlow Text), the twin of `dlpipe.data.wordpiece`.

Why it exists: an exported text SavedModel should take raw strings, so the
tokenisation must be TensorFlow ops. Core TF lacks Unicode NFD (accent
stripping), so this uses `tensorflow-text`.

Why `tft.BertTokenizer` with our own basic step rather than stock
`BertTokenizer`/`FastBertTokenizer`: both stock ones give the same ids as
`WordPieceTokenizer` on every review sentence, but differ on rarer input: they
case-fold with NFKC (ß -> ss, ½ -> 1⁄2, ﬁ -> fi, no final ς), limit words to 100
*bytes* (a 60-letter Cyrillic word becomes [UNK]), break words at control
characters instead of dropping them, keep U+FFFD and private-use characters
(-> [UNK]), use another CJK range (U+2B820..2B91F) and split a literal "[CLS]"
in the text (the slow one also misses U+2028 as whitespace). `BertTokenizer`
lets the basic step be replaced (`basic_tokenizer_class`) and takes any lookup
table, so the step below repeats `WordPieceTokenizer`'s rules one by one; the
differences left are Unicode-version ones (characters that Python's
`unicodedata` and TF's case/RE2/ICU tables know differently; see
tests/data/test_tf_wordpiece.py).

The vocabulary is a `StaticHashTable` built from constants, so it is saved
inside any SavedModel that tracks this module: no vocab.txt needed at load.
Loading such a SavedModel needs the TF Text ops: `import tensorflow_text` first.
"""

from __future__ import annotations

import re
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tft

from dlpipe.data.wordpiece import MAX_CHARS_PER_WORD, WordPieceTokenizer

# Literal special tokens in the text ("[CLS]", MPNet's "<s>") must stay one token, as in HF and
# WordPieceTokenizer. They are swapped for private-use "sentinel" characters before normalisation (which
# would lower-case and split them) and the lookup table maps each sentinel to the token's id. Private-use
# characters already in the text are dropped as control characters, so none can pose as a sentinel.
_MAX_LITERALS = 8  # sentinel slots U+E000..U+E007; BERT uses 5 of them, MPNet 6
_SENTINELS = [chr(0xE000 + index) for index in range(_MAX_LITERALS)]
_SENTINEL_CLASS = r"[\x{E000}-\x{E007}]"
_NOT_A_SENTINEL = chr(0xE000 + _MAX_LITERALS)  # still private-use, so dropped below

# Dropped like WordPieceTokenizer's cleaning: NUL, U+FFFD, and Cc/Cf/Co (Cs cannot occur in UTF-8) except \t\n\r.
_DROP = (r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\x{FFFD}]|\p{Cf}"
         r"|[\x{E008}-\x{F8FF}\x{F0000}-\x{FFFFD}\x{100000}-\x{10FFFD}]")
_WHITESPACE = r"[\t\n\r\p{Z}]+"  # " \t\n\r", Zs, and the Zl/Zp that Python's str.split() also splits on
_PUNCTUATION = r"[!-/:-@\[-`{-~]|\p{P}"  # BERT: ASCII non-alphanumerics plus Unicode P*
_CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
        r"\x{2B920}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")  # the Rust `tokenizers` ranges
_KEEP = f"{_PUNCTUATION}|{_CJK}|{_SENTINEL_CLASS}"


_UNKNOWN = "[UNK]"  # WordPiece's unknown piece in both BERT's and MPNet's vocabularies


class _UncasedBasicTokenizer(tft.TokenizerWithOffsets):
    """Text -> words exactly as `WordPieceTokenizer._basic_words` (plus special tokens as sentinels)."""

    def __init__(self, literal: tuple[str, ...]):
        super().__init__()
        self.literal = literal

    def tokenize(self, text_input):
        return self.tokenize_with_offsets(text_input)[0]

    def tokenize_with_offsets(self, text_input):
        text = text_input
        text = tf.strings.regex_replace(text, _SENTINEL_CLASS, _NOT_A_SENTINEL)
        for token, sentinel in zip(self.literal, _SENTINELS):
            text = tf.strings.regex_replace(text, re.escape(token), sentinel)
        text = tf.strings.regex_replace(text, _DROP, "")
        # lower-case (Python's str.lower rules, not NFKC case folding), NFD, drop combining marks
        text = tf.strings.lower(text, encoding="utf-8")
        text = tft.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        words, begin, end = tft.regex_split_with_offsets(text, f"{_WHITESPACE}|{_KEEP}", _KEEP)
        # a word longer than 100 characters is [UNK]: the literal "[UNK]" is in the table
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        words = words.with_flat_values(tf.where(too_long, _UNKNOWN, words.flat_values))
        return words, begin, end


class TFWordPieceTokenizer(tf.Module):
    """string[N] -> {"input_ids", "attention_mask"} int32 [N, L], the same as `WordPieceTokenizer.encode`.

    Invalid UTF-8 bytes are replaced by U+FFFD (which is then dropped), so a row
    with bad bytes gives the ids of `raw.decode("utf-8", "replace")` instead of failing the batch.
    """

    def __init__(self, vocab_file: str | Path, sequence_length: int, name: str | None = "wordpiece"):
        super().__init__(name=name)
        if sequence_length < 2:
            raise ValueError(f"sequence_length must be >= 2 to hold [CLS] and [SEP], got {sequence_length}")
        python = WordPieceTokenizer.from_vocab_file(vocab_file)  # same reading, checks and framing as the Python one
        vocab, literal = python.vocab, python.special.literal
        if len(literal) > _MAX_LITERALS or python.special.unk != _UNKNOWN:
            raise ValueError(f"{vocab_file}: special tokens {literal} do not fit the in-graph tokenizer")
        keys = list(vocab) + _SENTINELS[: len(literal)]
        values = list(vocab.values()) + [vocab[token] for token in literal]
        self.sequence_length = sequence_length
        self.vocab_size = len(vocab)
        self.pad_id, self.cls_id, self.sep_id = python.pad_id, python.cls_id, python.sep_id
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values, tf.int64)), default_value=-1)
        self._tokenizer = tft.BertTokenizer(
            self.table, token_out_type=tf.int32, unknown_token=_UNKNOWN,
            # words are at most 100 characters (longer ones were made "[UNK]"): at most 4 bytes each
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
            basic_tokenizer_class=lambda *_options: _UncasedBasicTokenizer(literal))

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged int32 [N, None]: the ids of each text without [CLS]/[SEP], truncation or padding."""
        texts = tf.strings.unicode_transcode(tf.convert_to_tensor(texts, tf.string), "UTF-8", "UTF-8",
                                             errors="replace", replacement_char=0xFFFD)
        return self._tokenizer.tokenize(texts).merge_dims(1, 2)

    def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """string[N] -> rows [CLS] ids [SEP], truncated keeping [SEP], right-padded with the [PAD] id."""
        ids = self.token_ids(texts)[:, : self.sequence_length - 2]
        rows = ids.nrows()
        ids = tf.concat([tf.fill([rows, 1], self.cls_id), ids, tf.fill([rows, 1], self.sep_id)], axis=1)
        shape = [None, self.sequence_length]
        return {"input_ids": ids.to_tensor(default_value=self.pad_id, shape=shape),
                "attention_mask": tf.ones_like(ids).to_tensor(default_value=0, shape=shape)}
