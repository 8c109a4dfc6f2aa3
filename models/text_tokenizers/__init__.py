"""Text tokenizers, looked up once by the name in `preprocess.tokenizer` / preprocessing.json.

`words` (Keras TextVectorization inside the model) and `wordpiece` (WordPiece ids fed to the model: MiniLM's
pruned pieces, or MiniLM's and MPNet's own vocabularies with their framing). Each is a `TextTokenizer`
(`base.py`) that owns its encoding, side files, SavedModel endpoints, TFLite inputs and TFLite metadata; no
other module compares tokenizer names (tests/models/test_text_tokenizers.py checks). Why here and not in
`data/`: the exports and the metadata writers they use live in `models`, and `data` never imports `models`.
Old artifacts whose preprocessing.json says "vectorize" are read as `words` by `TextPreprocessing.from_dict`.

Adding a tokenizer: a `TextTokenizer` subclass in its own module and one line in `TOKENIZERS` below.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from dlpipe.errors import DataError
from dlpipe.models.text_tokenizers.base import Encoder, TextTokenizer, TFLiteInputs, TrainingTokens
from dlpipe.models.text_tokenizers.wordpiece import WordPieceTextTokenizer
from dlpipe.models.text_tokenizers.words import WordsTokenizer
from dlpipe.registry import Registry

if TYPE_CHECKING:
    from dlpipe.data.text import TextPreprocessing

TOKENIZERS: Registry[TextTokenizer] = Registry("text tokenizer")
TOKENIZERS.add(WordsTokenizer.name, WordsTokenizer())
TOKENIZERS.add(WordPieceTextTokenizer.name, WordPieceTextTokenizer())


def tokenizer_named(name: str, key: str = "preprocess.tokenizer") -> TextTokenizer:
    """The tokenizer a config names; an unknown name is a ConfigError naming `key` (with "did you mean")."""
    return TOKENIZERS.get(name, key)


def tokenizer_for(prep: "TextPreprocessing", where: str | Path = "preprocessing.json") -> TextTokenizer:
    """The tokenizer of a preprocessing spec; an unknown name is a DataError naming `where` (the artifact)."""
    if prep.tokenizer not in TOKENIZERS:
        raise DataError(str(where), f"{TOKENIZERS.unknown_message(prep.tokenizer)}; export the model again with dlpipe")
    return TOKENIZERS.get(prep.tokenizer)


def make_text_encoder(prep: "TextPreprocessing", vocabulary: Sequence[str] | str | Path) -> Encoder:
    """A function texts -> the int32 id arrays a text model's ids-in form takes (every .tflite, WordPiece models),
    keyed by input name; `vocabulary` is the file exported beside the model (words: or its tokens in id order)."""
    return tokenizer_for(prep).encoder(prep, vocabulary)


__all__ = ["Encoder", "TFLiteInputs", "TOKENIZERS", "TextTokenizer", "TrainingTokens", "WordPieceTextTokenizer",
           "WordsTokenizer", "make_text_encoder", "tokenizer_for", "tokenizer_named"]
