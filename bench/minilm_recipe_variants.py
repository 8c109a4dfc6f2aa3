"""Benchmark: fine-tuning variants for MiniLM across review sites that `dlpipe run` does not offer (issue 14).

One command, from the repository root with the venv active:

    python bench/minilm_recipe_variants.py [--settings amazon→yelp yelp→amazon] [--variants base cls ...] [--seeds 42]

Each variant fine-tunes dlpipe's own all-MiniLM-L6-v2 port (`minilm_encoder`, its WordPiece tokenizer, 48
pieces) on one site's 1,000 sentences and scores the other site's 1,000, in one process with a plain training
loop: AdamW (weight decay 0.01), 10% linear warm-up then cosine decay, batch 32, dropout 0.1, 3 epochs at
5e-5 unless the variant says otherwise. `base` is that recipe (dlpipe's default scores 0.906 / 0.918 with it).
The variants are the usual remedies for fine-tuning that forgets what pretraining knew:

- `freeze-embeddings`: token, position and type embeddings stay pretrained, so words the source site never
  uses keep their pretrained vectors;
- `llrd`: layer-wise learning-rate decay (0.8 per layer downwards from the head, 1e-4 at the head);
- `cosine-head`: an L2-normalised sentence embedding and a bias-free head scaled by 20 (the geometry the
  sentence-transformers training gave the embedding is kept);
- `r-drop`: two dropout passes per batch and their symmetric KL as a penalty (weight 1);
- `cls`: the [CLS] token's state instead of mean pooling;
- `long-llrd`: 6 epochs at 3e-5 with layer decay 0.7;
- `batch-16`: batch 16.

Prints a markdown table; rows go to bench/results/minilm_recipe_variants.json (appended per run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sentiment_sentences"
SITES = {"amazon": DATA / "amazon_cells_labelled.txt", "yelp": DATA / "yelp_labelled.txt"}
SETTINGS = {"amazon→yelp": ("amazon", "yelp"), "yelp→amazon": ("yelp", "amazon")}
SEQUENCE_LENGTH = 48

# name -> changes to the base recipe
VARIANTS: dict[str, dict] = {
    "base": {},
    "freeze-embeddings": {"freeze_embeddings": True},
    "llrd": {"learning_rate": 1e-4, "layer_decay": 0.8},
    "cosine-head": {"cosine_head": True},
    "r-drop": {"r_drop": 1.0},
    "cls": {"pooling": "cls"},
    "long-llrd": {"epochs": 6, "learning_rate": 3e-5, "layer_decay": 0.7},
    "batch-16": {"batch_size": 16},
}
BASE = {"epochs": 3, "learning_rate": 5e-5, "batch_size": 32, "layer_decay": 1.0, "freeze_embeddings": False,
        "cosine_head": False, "r_drop": 0.0, "pooling": "mean"}


def read_site(path: Path) -> tuple[list[str], "np.ndarray"]:
    """A site's sentences and 0/1 labels, read as `dlpipe run` reads them."""
    import numpy as np

    from dlpipe.data.text import read_labelled_text

    table = read_labelled_text([path])
    return table.texts, np.array(table.labels, dtype=int)


def build(recipe: dict):
    """The classifier (logits) and, per variable, its depth below the head (0 = head, 7 = embeddings)."""
    import keras

    from dlpipe.models.bert_layers import MeanPooling
    from dlpipe.models.minilm import minilm_encoder

    encoder = minilm_encoder("pretrained", SEQUENCE_LENGTH, name="backbone", dropout=0.1)
    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="input_ids")
    mask = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="attention_mask")
    hidden = encoder([ids, mask])
    pooled = hidden[:, 0] if recipe["pooling"] == "cls" else MeanPooling()([hidden, mask])
    x = keras.layers.Dropout(0.1)(pooled)
    if recipe["cosine_head"]:
        logits = keras.layers.Dense(2, use_bias=False)(keras.layers.UnitNormalization()(x)) * 20.0
    else:
        logits = keras.layers.Dense(2)(x)
    model = keras.Model([ids, mask], logits)
    if recipe["freeze_embeddings"]:
        encoder.get_layer("embeddings").trainable = False
    depth = {}
    for variable in model.trainable_variables:
        block = re.search(r"layer_(\d+)", variable.path)
        depth[variable.path] = 7 if "embeddings" in variable.path else (6 - int(block.group(1)) if block else 0)
    return model, depth


def fine_tune(recipe: dict, source: str, target: str, seed: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from dlpipe.data.wordpiece import WordPieceTokenizer
    from dlpipe.models.minilm import minilm_files

    tokenizer = WordPieceTokenizer.from_vocab_file(minilm_files()[1])
    (train_texts, train_labels), (test_texts, test_labels) = read_site(SITES[source]), read_site(SITES[target])
    train = tokenizer.encode(train_texts, max_length=SEQUENCE_LENGTH)
    test = tokenizer.encode(test_texts, max_length=SEQUENCE_LENGTH)
    keras.utils.set_random_seed(seed)
    model, depth = build(recipe)
    steps = int(np.ceil(len(train_texts) / recipe["batch_size"])) * recipe["epochs"]
    warmup = max(1, steps // 10)
    groups: dict[int, list] = {}
    for variable in model.trainable_variables:
        groups.setdefault(depth[variable.path], []).append(variable)
    order = sorted(groups)
    optimizers = {d: keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, warmup_target=recipe["learning_rate"] * recipe["layer_decay"] ** d, warmup_steps=warmup),
        weight_decay=0.01) for d in order}
    for d in order:
        optimizers[d].build(groups[d])
    loss_of = keras.losses.CategoricalCrossentropy(from_logits=True)
    variables = [v for d in order for v in groups[d]]

    @tf.function
    def step(ids, mask, labels):
        with tf.GradientTape() as tape:
            targets = tf.one_hot(labels, 2)
            logits = model([ids, mask], training=True)
            loss = loss_of(targets, logits)
            if recipe["r_drop"]:
                again = model([ids, mask], training=True)
                p, q = tf.nn.log_softmax(logits), tf.nn.log_softmax(again)
                kl = tf.reduce_mean(tf.reduce_sum(tf.exp(p) * (p - q) + tf.exp(q) * (q - p), -1)) / 2
                loss = (loss + loss_of(targets, again)) / 2 + recipe["r_drop"] * kl
        gradients = tape.gradient(loss, variables)
        start = 0
        for d in order:
            count = len(groups[d])
            optimizers[d].apply_gradients(zip(gradients[start:start + count], groups[d]))
            start += count
        return loss

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for epoch in range(recipe["epochs"]):
        shuffled = rng.permutation(len(train_texts))
        for begin in range(0, len(shuffled), recipe["batch_size"]):
            batch = shuffled[begin:begin + recipe["batch_size"]]
            step(tf.constant(train["input_ids"][batch]), tf.constant(train["attention_mask"][batch]),
                 tf.constant(train_labels[batch]))
    seconds = time.perf_counter() - started
    logits = np.concatenate([model.predict_on_batch([test["input_ids"][i:i + 128], test["attention_mask"][i:i + 128]])
                             for i in range(0, len(test_texts), 128)])
    return {"accuracy": float((logits.argmax(axis=1) == test_labels).mean()), "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[42])
    args = parser.parse_args()
    results_file = ROOT / "bench" / "results" / "minilm_recipe_variants.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(results_file.read_text()) if results_file.exists() else []
    print("| variant | setting | seed | accuracy | training s |\n| --- | --- | --- | --- | --- |")
    for variant in args.variants:
        for setting in args.settings:
            for seed in args.seeds:
                result = fine_tune({**BASE, **VARIANTS[variant]}, *SETTINGS[setting], seed)
                row = {"date": date.today().isoformat(), "variant": variant, "setting": setting, "seed": seed, **result}
                rows.append(row)
                results_file.write_text(json.dumps(rows, indent=1))
                print(f"| {variant} | {setting} | {seed} | {result['accuracy']:.3f} | {result['train_seconds']:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
