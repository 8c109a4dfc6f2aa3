"""Our pure-Python WordPiece tokenizer checked live against the original: HF `tokenizers` with the model's own tokenizer.json."""

from __future__ import annotations

import pytest

from conftest import SENTENCES
from dlpipe.models.minilm import minilm_files, minilm_tokenizer
from assets import require_module

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
    reference_lib = require_module("tokenizers")
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
