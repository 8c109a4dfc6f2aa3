"""Our pure-Python WordPiece tokenizer against the original (HF `tokenizers` with the model's tokenizer.json)."""

from __future__ import annotations

import pytest

from conftest import SENTENCES
from dlpipe.data.wordpiece import WordPieceTokenizer
from dlpipe.errors import DataError
from dlpipe.models.minilm import minilm_files, minilm_tokenizer

TRICKY = [
    "Café naïve résumé — déjà vu!",
    "I paid $1,299.99 for it (ugh...) #fail @support",
    "Supercalifragilisticexpialidociously " + "x" * 120,
    "日本語のテキストと English mixed",
    "Emoji 😀👍 and tabs\tand\nnewlines",
    "[CLS] literal special tokens [SEP] stay whole",
    "ALL CAPS and MiXeD cAsE",
    "",
]


@pytest.fixture(scope="module")
def tokenizers():
    reference_lib = pytest.importorskip("tokenizers")
    weights, vocab = minilm_files()
    reference = reference_lib.Tokenizer.from_file(str(vocab.parent / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    return minilm_tokenizer(), reference


def test_matches_the_original_on_tricky_text(tokenizers):
    ours, reference = tokenizers
    for text in TRICKY:
        assert ours.encode([text], max_length=512)["input_ids"][0][: len(reference.encode(text).ids)].tolist() == \
            reference.encode(text).ids, text


def test_matches_the_original_on_every_review_sentence(tokenizers):
    ours, reference = tokenizers
    lines = []
    for path in sorted(SENTENCES.glob("*_labelled.txt")):
        lines += [line.rsplit("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    assert len(lines) >= 1900
    mismatches = [text for text in lines if [ours.cls_id, *ours.token_ids(text), ours.sep_id] != reference.encode(text).ids]
    assert mismatches == []


def test_padding_truncation_and_mask(tokenizers):
    ours, _ = tokenizers
    batch = ours.encode(["short one", "a much longer sentence that will certainly be cut off here"], max_length=8)
    assert batch["input_ids"].shape == (2, 8) and batch["input_ids"].dtype.name == "int32"
    assert batch["input_ids"][0][0] == ours.cls_id and ours.sep_id in batch["input_ids"][0]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert batch["input_ids"][1][-1] == ours.sep_id and batch["attention_mask"][1].min() == 1


def test_bad_vocab_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="vocab file not found"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "missing.txt")
    (tmp_path / "vocab.txt").write_text("hello\nworld\n")
    with pytest.raises(DataError, match="special tokens"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
