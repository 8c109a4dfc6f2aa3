"""Keras `TextVectorization`'s token ids in plain Python: a words model's .tflite is fed without TensorFlow.

Why: the layer is TensorFlow string ops, and importing TensorFlow to tokenise a sentence costs seconds. Each
step is the layer's own (keras/src/layers/preprocessing/text_vectorization.py, `_preprocess` and `call`),
done on UTF-8 bytes as TensorFlow does: `tf.strings.lower` lowers ASCII letters only, the punctuation regex
names ASCII characters only, `tf.strings.split` splits on ASCII whitespace only (a no-break space stays
inside a word), lookups are exact, unknown words get id 1 ("[UNK]"), and each row is cut or padded with 0 to
the sequence length. tests/models/test_text_tokenizers.py holds the ids equal to the layer's.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

# the layer's punctuation (DEFAULT_STRIP_REGEX), as bytes: every character it names is ASCII
PUNCTUATION = re.compile(rb'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
WHITESPACE = re.compile(rb"[ \t\n\v\f\r]+")  # what tf.strings.split (no separator) splits on
STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
PAD, UNKNOWN = 0, 1  # the ids of "" and "[UNK]", the first two lines of vocabulary.txt


class WordIds:
    """Texts -> int32 ids (N, sequence_length) exactly as a TextVectorization layer with `vocabulary` gives."""

    def __init__(self, vocabulary: Sequence[str], standardize: str | None, sequence_length: int):
        if standardize not in STANDARDIZE:
            raise ValueError(f"`standardize` must be one of {list(STANDARDIZE)}. Received: standardize={standardize!r}")
        self.lower = standardize in ("lower", "lower_and_strip_punctuation")
        self.strip = standardize in ("strip_punctuation", "lower_and_strip_punctuation")
        self.sequence_length = sequence_length
        # ids 0 ("") and 1 ("[UNK]") are the layer's own: a text word spelt "[UNK]" is unknown like any other
        self.ids = {token.encode("utf-8"): index for index, token in enumerate(vocabulary) if index > UNKNOWN}

    def words(self, text: str) -> list[bytes]:
        """One text's words after standardisation, as the layer looks them up."""
        data = text.encode("utf-8", "surrogateescape")
        if self.lower:
            data = data.lower()  # bytes.lower: ASCII letters only, as tf.strings.lower
        if self.strip:
            data = PUNCTUATION.sub(b"", data)
        return [word for word in WHITESPACE.split(data) if word]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.sequence_length), np.int32)
        for row, text in enumerate(texts):
            ids = [self.ids.get(word, UNKNOWN) for word in self.words(text)[:self.sequence_length]]
            out[row, :len(ids)] = ids
        return out
