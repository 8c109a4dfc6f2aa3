"""A small random MPNet folder laid out like the fetched all-mpnet-base-v2 (config.json, model.safetensors,
vocab.txt), so the pipeline, exports and runtimes run on MPNet without the 440 MB download."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64, "max_positions": 66}


def mpnet_vocab_lines() -> list[str]:
    """MPNet's vocabulary layout: <s> <pad> </s> <unk>, BERT's uncased vocab.txt (MiniLM's), then <mask>."""
    from dlpipe.models.minilm import minilm_files

    return ["<s>", "<pad>", "</s>", "<unk>", *minilm_files()[1].read_text(encoding="utf-8").splitlines(), "<mask>"]


def write_tiny_mpnet(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights (HF tensor names and layouts) of a 2-layer, 32-wide MPNet, written as a fetched folder."""
    import keras
    from safetensors.numpy import save_file

    from dlpipe.models.mpnet import _targets, mpnet_encoder

    folder.mkdir(parents=True, exist_ok=True)
    vocab = mpnet_vocab_lines()
    config = {**TINY, "vocab_size": len(vocab)}
    keras.utils.set_random_seed(seed)
    model = mpnet_encoder(None, None, config=config)
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, (variable, transpose) in _targets(model).items():
        value = np.asarray(variable.numpy())
        if name.endswith("LayerNorm.weight") or name.endswith("LayerNorm.bias") or name.endswith(".bias"):
            value = value + rng.normal(0, 0.1, value.shape).astype(np.float32)  # not the initial 1s and 0s
        tensors[name] = np.ascontiguousarray(value.T if transpose else value)
    tensors["embeddings.position_ids"] = np.arange(config["max_positions"], dtype=np.int64)[None]
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("".join(f"{line}\n" for line in vocab), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({
        "vocab_size": len(vocab), "hidden_size": TINY["hidden_size"], "num_hidden_layers": TINY["num_layers"],
        "num_attention_heads": TINY["num_heads"], "intermediate_size": TINY["intermediate_size"],
        "max_position_embeddings": TINY["max_positions"], "relative_attention_num_buckets": 32,
        "pad_token_id": 1, "layer_norm_eps": 1e-5}), encoding="utf-8")
    return tensors
