"""PyTorch side of bench/minilm_train_throughput.py (issue 31, item 5); runs in the bench-only venv that has torch.

    python bench/minilm_train_throughput_torch.py BATCHES.npz MODEL.safetensors WARMUP STEPS

Hugging Face transformers' BertModel in all-MiniLM-L6-v2's shape, loaded strictly from the same safetensors file
dlpipe ports, with dlpipe's head (masked mean pooling, dropout 0.1, Linear 384 -> 2), trained whole with
torch.optim.AdamW (lr 5e-5, weight decay 1e-4) and cross-entropy in train mode, the batches in file order. Prints one
JSON line: sentences/s over STEPS steps after WARMUP untimed ones, and torch's thread count (its default).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import transformers
import transformers.utils.import_utils as _imports
from safetensors.torch import load_file


def _without_torchvision() -> None:
    """The bench venv's torchvision does not match its CPU torch (no torchvision::nms), and transformers imports it
    when it is installed; BERT needs none of it, so transformers is told it is absent."""
    found = _imports._is_package_available
    _imports._is_package_available = lambda name, *a, **k: (False, "N/A") if name == "torchvision" else found(name, *a, **k)
    _imports.is_torchvision_available.cache_clear()


_without_torchvision()
from transformers import BertConfig, BertModel  # noqa: E402

BATCH, RATE, DECAY = 32, 5e-5, 1e-4
MINILM = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


class Classifier(torch.nn.Module):
    def __init__(self, weights: str):
        super().__init__()
        self.encoder = BertModel(MINILM, add_pooling_layer=False)
        state = {k: v for k, v in load_file(weights).items() if not k.startswith("pooler.")}
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        assert not missing and all("position_ids" in k for k in unexpected), (missing, unexpected)
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(384, 2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return self.head(self.dropout(pooled))


def main(data: str, weights: str, warmup: int, steps: int) -> None:
    arrays = np.load(data)
    ids, mask = torch.from_numpy(arrays["input_ids"]).long(), torch.from_numpy(arrays["attention_mask"]).long()
    labels = torch.from_numpy(arrays["labels"])
    model = Classifier(weights).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=RATE, weight_decay=DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = None
    for step in range(warmup + steps):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(ids[rows], mask[rows]), labels[rows])
        loss.backward()
        optimizer.step()
        if step + 1 == warmup:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    print(json.dumps({"sentences_per_s": round(steps * BATCH / seconds, 1), "seconds": round(seconds, 2),
                      "threads": {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads()},
                      "attention": model.encoder.config._attn_implementation,
                      "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                      "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
