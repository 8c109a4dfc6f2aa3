"""Sentiment/text classifiers over raw strings or WordPiece ids.

With words (`TextVectorization`, adapted on the training texts) the tokeniser
sits inside the model, so the trained, saved and exported model all take a
batch of strings. With WordPiece (`WordPieceIds`: MiniLM's subword vocabulary,
pruned) the model takes input_ids/attention_mask like MiniLM does, and the
exports put the tokeniser in front (the SavedModel) or beside it (the .tflite's
BertTokenizer metadata): subwords leave no word out of the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import layers

from dlpipe.models.bert_layers import MeanPooling
from dlpipe.models.text_layers import TokenAndPositionEmbedding, TransformerEncoder
from dlpipe.models.text_tokenizers.words import LAYER_NAME

RECURRENT = ("lstm", "gru", "bilstm")


@dataclass(frozen=True)
class WordPieceIds:
    """A model input of WordPiece ids (input_ids, attention_mask: int32 [N, sequence_length]), id 0 the padding."""

    pieces: int
    sequence_length: int

    def vocabulary_size(self) -> int:
        """As `TextVectorization.vocabulary_size()`: the classifiers and the run's summary take either source."""
        return self.pieces


def _token_ids(tokens: "layers.TextVectorization | WordPieceIds") -> tuple[Any, Any]:
    """(model inputs, the int token ids with 0 as padding) for either token source."""
    if isinstance(tokens, WordPieceIds):
        inputs = {name: keras.Input(shape=(tokens.sequence_length,), dtype="int32", name=name)
                  for name in ("input_ids", "attention_mask")}
        # padding is id 0 in both inputs; multiplying makes the mask an input the graph uses (not a dangling one)
        return inputs, layers.Multiply(name="masked_ids")([inputs["input_ids"], inputs["attention_mask"]])
    inputs = keras.Input(shape=(), dtype="string", name="text")
    return inputs, tokens(inputs)


def make_vectorizer(texts: list[str], max_tokens: int, sequence_length: int, standardize: str | None,
                    vocabulary: list[str] | None = None) -> layers.TextVectorization:
    """A TextVectorization layer adapted on `texts` (vocabulary from the training split only),
    or holding a given `vocabulary` (words only: "" and [UNK] come first by themselves)."""
    if vocabulary is not None:
        return layers.TextVectorization(vocabulary=vocabulary, output_sequence_length=sequence_length,
                                        standardize=standardize, name=LAYER_NAME)
    vectorizer = layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, standardize=standardize, name=LAYER_NAME
    )
    vectorizer.adapt(texts)
    return vectorizer


def training_words(texts: list[str], max_tokens: int, standardize: str | None) -> list[str]:
    """The training split's words, most frequent first, as TextVectorization would pick them."""
    vectorizer = make_vectorizer(texts, max_tokens, 1, standardize)
    return [str(word) for word in vectorizer.get_vocabulary()[2:]]


def recurrent_classifier(
    vectorizer: "layers.TextVectorization | WordPieceIds",
    num_classes: int,
    kind: str = "bilstm",
    embedding_dim: int = 64,
    units: int = 64,
    num_layers: int = 1,
    dropout: float = 0.3,
    recurrent_dropout: float = 0.0,
    embedding_weights: np.ndarray | None = None,
) -> keras.Model:
    """strings (or WordPiece ids) -> embedding -> stacked LSTM/GRU/BiLSTM -> dropout -> softmax.

    embedding_weights: (vocabulary size, embedding_dim) initial rows (pretrained vectors), else random.
    """
    if kind not in RECURRENT:
        raise ValueError(f"`kind` must be one of {list(RECURRENT)}. Received: kind={kind!r}")
    inputs, x = _token_ids(vectorizer)
    embedding = layers.Embedding(vectorizer.vocabulary_size(), embedding_dim, mask_zero=True, name="embedding")
    x = embedding(x)
    if embedding_weights is not None:
        # assigned, not a Constant initializer: that one is saved in the model's config, as a list of every
        # value (22 MB of JSON in model.keras for 8,000 x 128)
        embedding.embeddings.assign(embedding_weights)
    for index in range(num_layers):
        last = index == num_layers - 1
        cell_cls = layers.GRU if kind == "gru" else layers.LSTM
        cell = cell_cls(units, return_sequences=not last, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, name=f"{kind}_{index}")
        x = layers.Bidirectional(cell, name=f"bidirectional_{index}")(x) if kind == "bilstm" else cell(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{kind}_classifier")


def transformer_classifier(
    vectorizer: "layers.TextVectorization | WordPieceIds",
    num_classes: int,
    sequence_length: int,
    embed_dim: int = 64,
    num_heads: int = 4,
    ff_dim: int = 128,
    num_layers: int = 2,
    dropout: float = 0.1,
    embedding_weights: np.ndarray | None = None,
) -> keras.Model:
    """strings (or WordPiece ids) -> token + position embedding -> encoder blocks -> masked mean pooling -> softmax.

    embedding_weights: (vocabulary size, embed_dim) initial token rows (pretrained vectors), else random.
    """
    if embed_dim % num_heads:
        raise ValueError(f"`embed_dim` must be divisible by `num_heads`. Received: embed_dim={embed_dim}, num_heads={num_heads}")
    inputs, token_ids = _token_ids(vectorizer)
    embedding = TokenAndPositionEmbedding(sequence_length, vectorizer.vocabulary_size(), embed_dim, name="embedding")
    x = embedding(token_ids)
    if embedding_weights is not None:
        embedding.tokens.embeddings.assign(embedding_weights)
    for index in range(num_layers):
        x = TransformerEncoder(embed_dim, num_heads, ff_dim, dropout, name=f"encoder_{index}")(x)
    # a masked mean with an epsilon: a text with no known token (empty, punctuation only) must not divide 0 by 0
    x = MeanPooling(name="mean_pool")([x, keras.ops.not_equal(token_ids, 0)])
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="transformer_classifier")


def minilm_classifier(num_classes: int, sequence_length: int, dropout: float = 0.1,
                      weights: str | None = "pretrained", config: dict | None = None) -> keras.Model:
    """Pretrained all-MiniLM-L6-v2 -> masked mean pooling -> dropout -> softmax.

    Inputs are WordPiece `input_ids` and `attention_mask` (int32, sequence_length);
    `dlpipe.data.wordpiece` produces them. The encoder is the nested layer
    "backbone" and trains whole (fine-tuning with a small learning rate).
    """
    from dlpipe.models.minilm import minilm_encoder

    encoder = minilm_encoder(weights, sequence_length, name="backbone", dropout=dropout, config=config)
    return _pooled_classifier(encoder, num_classes, sequence_length, dropout, "minilm_classifier")


def mpnet_classifier(num_classes: int, sequence_length: int, dropout: float = 0.1,
                     weights: str | None = "pretrained", config: dict | None = None) -> keras.Model:
    """Pretrained all-mpnet-base-v2 -> masked mean pooling -> dropout -> softmax: MiniLM's head on the larger
    encoder (`dlpipe.models.mpnet`), whose WordPiece rows are framed <s> ... </s>."""
    from dlpipe.models.mpnet import mpnet_encoder

    encoder = mpnet_encoder(weights, sequence_length, name="backbone", dropout=dropout, config=config)
    return _pooled_classifier(encoder, num_classes, sequence_length, dropout, "mpnet_classifier")


def _pooled_classifier(encoder: keras.Model, num_classes: int, sequence_length: int, dropout: float,
                       name: str) -> keras.Model:
    inputs = {key: keras.Input(shape=(sequence_length,), dtype="int32", name=key) for key in ("input_ids", "attention_mask")}
    pooled = MeanPooling(name="mean_pooling")([encoder(inputs), inputs["attention_mask"]])
    x = layers.Dropout(dropout, name="head_dropout")(pooled)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
