"""A RegexTokenizer vocabulary that reproduces Keras TextVectorization ids (lower_and_strip_punctuation).

MediaPipe splits text with an RE2 delimiter regex and looks each piece up; Keras lower-cases, strips ASCII
punctuation and splits on whitespace. `text_vectorization_vocabulary` lists every spelling of a vocabulary word
that MediaPipe's split can produce, so both give the same ids.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from dlpipe.models.tflite_metadata.schema import REGEX_PAD, REGEX_UNKNOWN

# Splits as Keras "lower_and_strip_punctuation" + whitespace split does, for text_vectorization_vocabulary:
# whitespace runs with the punctuation touching them, and punctuation at the start or end of the text.
# Punctuation inside a word stays in the piece ("don't"); the vocabulary maps such forms to Keras' id.
KERAS_DELIMITER_REGEX = r"[[:punct:]]*[[:space:]]+[[:punct:]]*|^[[:punct:]]+|[[:punct:]]+$"


_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def text_vectorization_vocabulary(vocabulary: Sequence[str], texts: Iterable[str] = ()) -> bytes:
    """A RegexTokenizer vocabulary giving the ids of Keras `TextVectorization` "lower_and_strip_punctuation".

    Why more than the tokens: MediaPipe's RegexTokenizer neither lower-cases nor
    deletes punctuation inside a word, so each id is listed under the spellings
    that Keras maps to it: the token, its English contractions ("well" ->
    "we'll", "friends" -> "friend's"), their ASCII Capitalised and UPPER forms,
    and every piece of `texts` (split with KERAS_DELIMITER_REGEX) whose Keras
    form is in the vocabulary. Every spelling listed is one Keras maps to that
    id, so extra spellings never change an id, they only turn <UNKNOWN> into
    the right one. Pass the training texts: then those texts tokenise exactly
    as in Keras; other text differs only where a word is spelt in a way not
    listed (e.g. "gOOd", "e-mail").

    Args:
        vocabulary: `TextVectorization.get_vocabulary()`: "" (padding, id 0), "[UNK]" (id 1), tokens.
        texts: raw texts whose spellings to add, typically the training set.
    """
    tokens = list(vocabulary)
    if tokens[:2] != ["", "[UNK]"]:
        raise ValueError('`vocabulary` must start with "" and "[UNK]" (TextVectorization.get_vocabulary())')
    ids = {token: index for index, token in enumerate(tokens) if index >= 2}
    spellings: dict[str, int] = {}
    for token, index in ids.items():
        for spelling in (token, *_contractions(token)):
            for form in (spelling, _ascii_capitalize(spelling), _ascii_upper(spelling)):
                spellings.setdefault(form, index)
    for text in texts:
        for piece in _pieces(text):
            index = ids.get(_keras_standardize(piece))
            if index is not None:
                spellings.setdefault(piece, index)
    lines = [f"{REGEX_PAD} 0", f"{REGEX_UNKNOWN} 1"] + [f"{form} {index}" for form, index in spellings.items()]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _pieces(text: str) -> list[str]:
    """`text` split as KERAS_DELIMITER_REGEX splits it in MediaPipe: whitespace, and punctuation at word edges."""
    chunks = (chunk.strip(_ASCII_PUNCTUATION) for chunk in _ASCII_SPACE.split(text))
    return [chunk for chunk in chunks if chunk]


def _keras_standardize(piece: str) -> str:
    """Keras "lower_and_strip_punctuation" on one piece: ASCII lower case (tf.strings.lower), ASCII punctuation removed."""
    return _ascii_lower(piece).translate(_STRIP)


_ASCII_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # RE2's [[:space:]]; str.split() would also split on Unicode spaces


_STRIP = str.maketrans("", "", _ASCII_PUNCTUATION)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


def _ascii_upper(text: str) -> str:
    return text.translate(_UPPER)


_CONTRACTION_ENDINGS = ("n't", "'s")  # after any word: "don't", "phone's"


# after these words only ("we'll", "they're", "could've", "i'd", "i'm"): listing "goo'd" or "fro'm" for every word
# ending in d or m made the packed vocabulary about a fifth larger for spellings no text has
_PRONOUN_ENDINGS = {
    "'ll": ("i", "you", "he", "she", "it", "we", "they", "that", "there", "who", "what"),
    "'re": ("you", "we", "they", "there", "who", "what"),
    "'ve": ("i", "you", "we", "they", "who", "could", "would", "should", "might", "must"),
    "'d": ("i", "you", "he", "she", "it", "we", "they", "that", "there", "who"),
    "'m": ("i",),
}


def _contractions(token: str) -> list[str]:
    """Spellings of `token` with an English contraction's apostrophe, which Keras strips ("dont" -> "don't")."""
    out = []
    for ending in _CONTRACTION_ENDINGS:
        letters = ending.replace("'", "")
        if len(token) > len(letters) and token.endswith(letters):
            out.append(token[:-len(letters)] + ending)
    for ending, stems in _PRONOUN_ENDINGS.items():
        letters = ending.replace("'", "")
        if token.endswith(letters) and token[:-len(letters)] in stems:
            out.append(token[:-len(letters)] + ending)
    return out


def _ascii_capitalize(text: str) -> str:
    return _ascii_upper(text[:1]) + text[1:]
