"""The in-graph (TF Text) tokenizer gives exactly the ids of the pure-Python WordPieceTokenizer."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from conftest import SENTENCES
from dlpipe.errors import DataError
from assets import MINILM, requires

pytestmark = requires(**MINILM)

EDGE_CASES = [
    "Café naïve résumé — déjà vu!",
    "ALL CAPS and MiXeD cAsE",
    "Wow!!! Really?!?! ...no way;;; (((ok))) --- ''quoted'' #fail @support",
    "I paid $1,299.99 for 3 phones in 2024 (ugh) 100% 4.5/5 1st 2nd",
    "Emoji 😀👍🏽 and a family 👨‍👩‍👧 ❤️",
    "日本語のテキストと English mixed, 中文 한국어",
    "x\U0002B8FFy x\U0002B920y",  # U+2B820..2B91F: CJK for stock TF Text, not for the Rust tokenizer (nor us)
    "Supercalifragilisticexpialidociously " + "x" * 120,  # a word over 100 characters is [UNK]
    "x" * 100 + " " + "y" * 101,
    "ж" * 60,  # 120 bytes but 60 characters: stock TF Text would make it [UNK]
    "tabs\tand\nnewlines\r\nand  many   spaces",
    "",
    "   \t\n ",
    "Straße ΟΔΟΣ İstanbul ǅemal ﬁne ½ ①",  # Python lower-casing, not NFKC case folding
    "no\u00a0break, thin\u2009space, line\u2028separator, zero\u200bwidth, soft\u00adhyphen",
    "nul\x00byte, bell\x07, replacement\ufffdchar, private\ue001use",
    "[CLS] literal special tokens [SEP] stay whole, [cls] and [CL\u200bS] do not, [[MASK]]",
]


@pytest.fixture(scope="module")
def tokenizers():
    from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer
    from dlpipe.models.minilm import minilm_files, minilm_tokenizer

    return minilm_tokenizer(), TFWordPieceTokenizer(minilm_files()[1], sequence_length=48)


@pytest.fixture(scope="module")
def review_sentences() -> list[str]:
    lines: list[str] = []
    for path in sorted(SENTENCES.glob("*_labelled.txt")):
        lines += [line.rsplit("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    assert len(lines) >= 1900
    return lines


def graph_encode(tokenizer, texts, length: int) -> dict[str, np.ndarray]:
    tokenizer.sequence_length = length
    try:
        out = tokenizer(tf.constant(texts, tf.string))
    finally:
        tokenizer.sequence_length = 48
    return {name: value.numpy() for name, value in out.items()}


def mismatched_rows(python, graph, texts: list, length: int) -> list:
    ours = python.encode([t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in texts], max_length=length)
    theirs = graph_encode(graph, texts, length)
    assert theirs["input_ids"].dtype == np.int32 and theirs["input_ids"].shape == (len(texts), length)
    bad = (ours["input_ids"] != theirs["input_ids"]).any(1) | (ours["attention_mask"] != theirs["attention_mask"]).any(1)
    return [texts[i] for i in np.flatnonzero(bad)]


@pytest.mark.parametrize("length", [48, 8])
def test_same_ids_as_python_on_every_review_sentence(tokenizers, review_sentences, length):
    assert mismatched_rows(*tokenizers, review_sentences, length) == []


@pytest.mark.parametrize("length", [64, 8, 2])
def test_same_ids_as_python_on_edge_cases(tokenizers, length):
    assert mismatched_rows(*tokenizers, EDGE_CASES, length) == []


def test_literal_special_tokens_stay_whole(tokenizers):
    python, graph = tokenizers
    ids = graph.token_ids(tf.constant(["a [SEP] b [MASK]"])).to_list()[0]
    assert ids == python.token_ids("a [SEP] b [MASK]")
    assert python.vocab["[SEP]"] in ids and python.vocab["[MASK]"] in ids


def test_rows_are_cls_ids_sep_then_padding(tokenizers):
    python, graph = tokenizers
    out = graph_encode(graph, ["good phone", "a much longer sentence than four tokens"], 5)
    cls, sep = python.cls_id, python.sep_id
    assert out["input_ids"].tolist() == [[cls, *python.token_ids("good phone"), sep, 0],
                                         [cls, *python.token_ids("a much longer")[:3], sep]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_invalid_utf8_bytes_are_replaced_then_dropped(tokenizers):
    """Defined result, no error: the ids of `raw.decode("utf-8", "replace")` (U+FFFD is then dropped)."""
    python, graph = tokenizers
    raw = [b"ok \xff\xfe bad", b"caf\xc3", b"\xed\xa0\x80surrogate", b"\xc0\xafoverlong", b"ab\xe2\x82c"]
    assert mismatched_rows(python, graph, raw, 16) == []
    assert graph.token_ids(tf.constant([b"ok \xff bad"])).to_list() == [python.token_ids("ok bad")]


def test_empty_batch(tokenizers):
    out = graph_encode(tokenizers[1], [], 8)
    assert out["input_ids"].shape == (0, 8) and out["attention_mask"].shape == (0, 8)


def test_works_inside_tf_function(tokenizers):
    python, graph = tokenizers
    encode = tf.function(graph.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    out = encode(tf.constant(["Café naïve!"]))
    assert out["input_ids"].shape == (1, 48)
    assert out["input_ids"].numpy().tolist() == python.encode(["Café naïve!"], 48)["input_ids"].tolist()


def test_every_bmp_character_inside_a_word(tokenizers):
    """All 63,488 BMP code points between two letters: the only differences are characters that
    Python's `unicodedata` does not know yet (Cn) while TF's newer RE2/ICU tables do."""
    python, graph = tokenizers
    chars = [chr(cp) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    texts = [f"x{char}y" for char in chars]
    theirs = graph.token_ids(tf.constant([t.encode("utf-8") for t in texts])).to_list()
    differ = [char for char, text, ids in zip(chars, texts, theirs) if python.token_ids(text) != ids]
    assert all(unicodedata.category(char) == "Cn" for char in differ), [hex(ord(c)) for c in differ]
    assert len(differ) < 10


def test_known_difference_characters_newer_than_python_unicode(tokenizers):
    """U+0ECE (Lao Yamakkan, Unicode 15) is a combining mark to TF, so it is stripped; Python 3.11
    (Unicode 14) does not know it, keeps it, and the word becomes [UNK]. Python >= 3.12 agrees with TF."""
    python, graph = tokenizers
    graph_ids = graph.token_ids(tf.constant(["x\u0ecey"])).to_list()[0]
    assert graph_ids == python.token_ids("xy")
    if unicodedata.category("\u0ece") == "Cn":
        assert python.token_ids("x\u0ecey") == [python.unk_id]
    else:
        assert python.token_ids("x\u0ecey") == graph_ids


def test_known_difference_final_sigma_before_a_new_combining_mark(tokenizers):
    """TF's lower-casing predates Unicode 14, so it does not see U+0898 (a Unicode 14 combining mark) as
    "case-ignorable": "ΑΣ\u0898b" ends the word at Σ for TF (final ς) but not for Python (σ)."""
    python, graph = tokenizers
    text = "ΑΣ\u0898b"
    token = {i: t for t, i in python.vocab.items()}
    assert python.tokenize(text) == ["α", "##σ", "##b"]
    assert [token[i] for i in graph.token_ids(tf.constant([text])).to_list()[0]] == ["α", "##ς", "##b"]


def test_bad_arguments(tmp_path):
    from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer
    from dlpipe.models.minilm import minilm_files

    with pytest.raises(ValueError, match="sequence_length"):
        TFWordPieceTokenizer(minilm_files()[1], 1)
    with pytest.raises(DataError, match="vocab file not found"):
        TFWordPieceTokenizer(tmp_path / "missing.txt", 16)
    (tmp_path / "plain.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match="special tokens"):
        TFWordPieceTokenizer(tmp_path / "plain.txt", 16)
