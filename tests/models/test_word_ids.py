"""A words model's token ids without TensorFlow (`word_ids.WordIds`) are exactly Keras' TextVectorization ids."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SENTENCES
from dlpipe.models.text_tokenizers.word_ids import WordIds

# what tells the byte-level steps apart: non-ASCII case, Unicode spaces (no split), punctuation outside ASCII,
# an "[UNK]" typed in, empty and over-long texts
ODD_TEXTS = ["ÉCOLE Straße İstanbul ΣΊΣΥΦΟΣ", "a\u00a0b c\u2003d e\x1cf g\x85h i\vj k\fl m\rn o\tp", "  lead  trail  ", "",
             "don't stop-believing!!! (yes) [UNK] UNK", "ＦＵＬＬ width，punct。", "emoji 😀 ok", "x " * 40, "it's it’s"]


def shared_sentences() -> list[str]:
    texts = []
    for path in sorted(SENTENCES.glob("*_labelled.txt")):
        texts += [line.rsplit("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) >= 2000
    return texts


@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", "strip_punctuation", None])
def test_word_ids_equal_text_vectorization_on_the_shared_sentences(standardize: str | None) -> None:
    import keras
    import tensorflow as tf

    texts = shared_sentences() + ODD_TEXTS
    fitted = keras.layers.TextVectorization(max_tokens=3000, standardize=standardize, output_sequence_length=20)
    fitted.adapt(texts[::2] + ODD_TEXTS)  # half the sentences: the other half meets unknown words
    vocabulary = [str(token) for token in fitted.get_vocabulary()]
    layer = keras.layers.TextVectorization(standardize=standardize, output_sequence_length=20, vocabulary=vocabulary[2:])
    expected = layer(tf.constant(texts)).numpy()
    ours = WordIds(vocabulary, standardize, 20)(texts)
    assert ours.dtype == np.int32 and ours.shape == expected.shape
    assert np.array_equal(ours, expected)
    assert (ours == 1).any() and (ours > 1).any()  # unknown and known words both occur
