"""Layers of the small transformer encoder trained from scratch."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="dlpipe")
class TokenAndPositionEmbedding(layers.Layer):
    """Token embedding plus a learnt position embedding; token id 0 (padding) is masked."""

    def __init__(self, sequence_length: int, vocabulary_size: int, embed_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.vocabulary_size = vocabulary_size
        self.embed_dim = embed_dim
        self.tokens = layers.Embedding(vocabulary_size, embed_dim, mask_zero=True, name="tokens")
        self.positions = layers.Embedding(sequence_length, embed_dim, name="positions")

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))
        super().build(input_shape)

    def call(self, token_ids):
        length = ops.shape(token_ids)[-1]
        positions = ops.arange(0, length, dtype="int32")
        return self.tokens(token_ids) + self.positions(positions)

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "vocabulary_size": self.vocabulary_size, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package="dlpipe")
class TransformerEncoder(layers.Layer):
    """Post-norm encoder block: self-attention and a feed-forward network, each with a residual."""

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.embed_dim, self.num_heads, self.ff_dim, self.dropout = embed_dim, num_heads, ff_dim, dropout
        self.attention = layers.MultiHeadAttention(num_heads, embed_dim // num_heads, dropout=dropout, name="attention")
        self.feed_forward = keras.Sequential(
            [layers.Dense(ff_dim, activation="gelu"), layers.Dense(embed_dim)], name="feed_forward"
        )
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.drop1 = layers.Dropout(dropout)
        self.drop2 = layers.Dropout(dropout)

    def build(self, input_shape):
        self.attention.build(input_shape, input_shape)
        self.feed_forward.build(input_shape)
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, mask=None, training=None):
        attention_mask = None
        if mask is not None:
            attention_mask = ops.logical_and(ops.expand_dims(mask, 1), ops.expand_dims(mask, 2))
        attended = self.attention(inputs, inputs, attention_mask=attention_mask, training=training)
        x = self.norm1(inputs + self.drop1(attended, training=training))
        return self.norm2(x + self.drop2(self.feed_forward(x), training=training))

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}
