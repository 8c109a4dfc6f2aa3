"""Keras 3 building blocks of a BERT encoder, laid out like HF `BertModel`, and MPNet's two additions.

Why own layers rather than `keras.layers.MultiHeadAttention`: the weights come
from a PyTorch BERT checkpoint, and keeping one Dense per HF tensor (query, key,
value, attention output, intermediate, output) makes the mapping one-to-one
(Dense kernel = torch weight transposed) and easy to audit. Everything is
written with `keras.ops`, so the layers save to .keras and reload once this
module is imported (they are registered under the "dlpipe" package).
"""

from __future__ import annotations

import math

import keras
from keras import ops

_PACKAGE = "dlpipe"


def _mask_bias(attention_mask, dtype):
    """(batch, seq) 1/0 mask -> additive (batch, 1, 1, seq) bias for attention scores."""
    # -1e9 vanishes in the float32 softmax; float16 cannot hold it, so use its own large negative.
    dtype = keras.backend.standardize_dtype(dtype)
    negative = -1e4 if dtype in ("float16", "bfloat16") else -1e9
    mask = ops.cast(attention_mask, dtype)
    return ops.expand_dims(ops.expand_dims((1.0 - mask) * negative, 1), 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BertEmbeddings(keras.layers.Layer):
    """Word + absolute position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_positions: int = 512,
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_positions = max_positions
        self.type_vocab_size = type_vocab_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=init, name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            max_positions, hidden_size, embeddings_initializer=init, name="position_embeddings"
        )
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=init, name="token_type_embeddings"
        )
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            emb.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, input_ids, token_type_ids=None, training=None):
        seq_len = ops.shape(input_ids)[1]
        positions = ops.expand_dims(ops.arange(seq_len, dtype="int32"), 0)
        if token_type_ids is None:
            token_type_ids = ops.zeros_like(input_ids)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_positions=self.max_positions,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            dropout=self.dropout_rate,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BertLayer(keras.layers.Layer):
    """One post-LayerNorm BERT block: self-attention, add & norm, exact-GELU MLP, add & norm."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float = 1e-12,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout
        self.attention_dropout_rate = attention_dropout
        init = keras.initializers.TruncatedNormal(stddev=0.02)

        def dense(units: int, name: str) -> keras.layers.Dense:
            return keras.layers.Dense(units, kernel_initializer=init, name=name)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="attention_norm")
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output_dense")
        self.output_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="output_norm")
        self.attention_dropout = keras.layers.Dropout(attention_dropout)
        self.hidden_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        hidden = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden)
        self.output_dense.build((None, None, self.intermediate_size))
        self.attention_norm.build(hidden)
        self.output_norm.build(hidden)
        self.built = True

    def _heads(self, x):
        # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, seq, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def call(self, hidden_states, attention_mask, position_bias=None, training=None):
        """position_bias: an additive (1 or batch, heads, seq, seq) score bias (MPNet's relative positions)."""
        batch, seq = ops.shape(hidden_states)[0], ops.shape(hidden_states)[1]
        q = self._heads(self.query(hidden_states))
        k = self._heads(self.key(hidden_states))
        v = self._heads(self.value(hidden_states))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.head_dim)
        scores = scores + _mask_bias(attention_mask, scores.dtype)
        if position_bias is not None:
            scores = scores + ops.cast(position_bias, scores.dtype)
        probs = self.attention_dropout(ops.softmax(scores, axis=-1), training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        context = ops.reshape(context, (batch, seq, self.hidden_size))
        attn = self.hidden_dropout(self.attention_output(context), training=training)
        x = self.attention_norm(hidden_states + attn)
        h = ops.gelu(self.intermediate(x), approximate=False)  # BERT "gelu" is the erf form
        h = self.hidden_dropout(self.output_dense(h), training=training)
        return self.output_norm(x + h)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            layer_norm_eps=self.layer_norm_eps,
            dropout=self.dropout_rate,
            attention_dropout=self.attention_dropout_rate,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MeanPooling(keras.layers.Layer):
    """Mean of token vectors over the attention mask: the sentence-transformers pooling.

    Inputs: [hidden (batch, seq, dim), attention_mask (batch, seq)]; padded
    positions do not count, so the result does not depend on the padding length.
    """

    def __init__(self, epsilon: float = 1e-9, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.supports_masking = True  # the mask arrives as an input; a Keras mask on `hidden` is consumed here

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        hidden, mask = inputs
        mask = ops.expand_dims(ops.cast(mask, hidden.dtype), -1)
        total = ops.sum(hidden * mask, axis=1)
        count = ops.maximum(ops.sum(mask, axis=1), self.epsilon)
        return total / count

    def compute_output_shape(self, input_shape):
        hidden_shape = input_shape[0]
        return (hidden_shape[0], hidden_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


def relative_position_buckets(length, num_buckets: int = 32, max_distance: int = 128):
    """(length, length) int32: MPNet's (T5's bidirectional) bucket of each key offset from each query.

    Half the buckets per direction; offsets below a quarter of `num_buckets` get a bucket each, larger
    ones share log-spaced buckets up to `max_distance`, beyond which all share the last.
    """
    positions = ops.arange(length, dtype="int32")
    offset = ops.expand_dims(positions, 1) - ops.expand_dims(positions, 0)  # query - key, HF's `n`
    half = num_buckets // 2
    exact = half // 2
    direction = ops.cast(offset < 0, "int32") * half
    distance = ops.abs(offset)
    scaled = ops.log(ops.cast(ops.maximum(distance, 1), "float32") / exact) / math.log(max_distance / exact)
    far = ops.minimum(exact + ops.cast(scaled * (half - exact), "int32"), half - 1)
    return direction + ops.where(distance < exact, distance, far)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MPNetEmbeddings(keras.layers.Layer):
    """Word + absolute position embeddings (no token types), then LayerNorm and dropout: HF `MPNetEmbeddings`.

    Positions count real tokens from `pad_id + 1`, as RoBERTa's do; they are taken from the attention mask
    rather than from ids != pad_id, which is the same for dlpipe's tokenizer and stays right when a runtime
    pads with another id (MediaPipe pads with 0).
    """

    def __init__(self, vocab_size: int, hidden_size: int, max_positions: int = 514, pad_id: int = 1,
                 layer_norm_eps: float = 1e-5, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_positions = max_positions
        self.pad_id = pad_id
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.word_embeddings = keras.layers.Embedding(vocab_size, hidden_size, embeddings_initializer=init,
                                                      name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(max_positions, hidden_size, embeddings_initializer=init,
                                                          name="position_embeddings")
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape=None):
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, input_ids, attention_mask, training=None):
        mask = ops.cast(attention_mask, "int32")
        positions = ops.cumsum(mask, axis=1) * mask + self.pad_id
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_size=self.hidden_size, max_positions=self.max_positions,
                      pad_id=self.pad_id, layer_norm_eps=self.layer_norm_eps, dropout=self.dropout_rate)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RelativePositionBias(keras.layers.Layer):
    """hidden (batch, seq, dim) -> (1, heads, seq, seq) attention-score bias from one learnt table of
    (buckets, heads): MPNet's relative positions, computed once and shared by every layer."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance

    def build(self, input_shape=None):
        self.table = self.add_weight(shape=(self.num_buckets, self.num_heads), name="relative_attention_bias",
                                     initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.built = True

    def call(self, hidden_states):
        buckets = relative_position_buckets(ops.shape(hidden_states)[1], self.num_buckets, self.max_distance)
        bias = ops.take(self.table, buckets, axis=0)  # (seq, seq, heads)
        return ops.expand_dims(ops.transpose(bias, (2, 0, 1)), 0)

    def compute_output_shape(self, input_shape):
        return (1, self.num_heads, input_shape[1], input_shape[1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_heads=self.num_heads, num_buckets=self.num_buckets, max_distance=self.max_distance)
        return config
