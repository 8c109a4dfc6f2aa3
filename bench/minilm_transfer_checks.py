"""Benchmark: two cheap alternatives to fine-tuning MiniLM for another review site (issue 14, text).

One command, from the repository root with the venv active (scikit-learn is installed with dlpipe):

    python bench/minilm_transfer_checks.py [--run RUN_DIR]

1. Probe: all-MiniLM-L6-v2's sentence embeddings (mean-pooled, L2-normalised, frozen) of all amazon and all
   yelp sentences, a logistic regression trained on one site and scored on the other, for C in 0.1 .. 100.
2. WiSE-FT (with --run, a MiniLM sentiment run trained on amazon): the run's fine-tuned encoder averaged with
   the pretrained one, alpha * fine-tuned + (1 - alpha) * pretrained, head kept, scored on all yelp sentences.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment_sentences"


def read(name: str) -> tuple[list[str], np.ndarray]:
    """A site's sentences and 0/1 labels, read as `dlpipe run` reads them."""
    from dlpipe.data.text import read_labelled_text

    table = read_labelled_text([DATA / name])
    return table.texts, np.array(table.labels, dtype=int)


def probe() -> None:
    from sklearn.linear_model import LogisticRegression

    from dlpipe.models.minilm import minilm_tokenizer, sentence_embedding_model

    tokenizer, model = minilm_tokenizer(), sentence_embedding_model("pretrained", 64)

    def embed(texts: list[str]) -> np.ndarray:
        encoded = tokenizer.encode(texts, 64)
        return model.predict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]},
                             batch_size=64, verbose=0)

    (amazon, amazon_y), (yelp, yelp_y) = read("amazon_cells_labelled.txt"), read("yelp_labelled.txt")
    amazon_x, yelp_x = embed(amazon), embed(yelp)
    print("| C | amazon→yelp | yelp→amazon |\n| --- | --- | --- |")
    for c in (0.1, 1.0, 10.0, 100.0):
        a2y = LogisticRegression(C=c, max_iter=2000).fit(amazon_x, amazon_y).score(yelp_x, yelp_y)
        y2a = LogisticRegression(C=c, max_iter=2000).fit(yelp_x, yelp_y).score(amazon_x, amazon_y)
        print(f"| {c:g} | {a2y:.3f} | {y2a:.3f} |", flush=True)


def wise(run: str) -> None:
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.text_classifiers import minilm_classifier

    runtime = load_runtime(run, "keras")
    texts, labels = read("yelp_labelled.txt")
    positive = runtime.class_names.index("1")
    backbone = runtime.model.get_layer("backbone")
    tuned = [w.copy() for w in backbone.get_weights()]
    pretrained = minilm_classifier(len(runtime.class_names), runtime.preprocessing.sequence_length) \
        .get_layer("backbone").get_weights()
    print("| alpha | amazon→yelp |\n| --- | --- |")
    for alpha in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
        backbone.set_weights([alpha * a + (1 - alpha) * b for a, b in zip(tuned, pretrained)])
        accuracy = np.mean((runtime.predict(texts).argmax(1) == positive) == (labels == 1))
        print(f"| {alpha:g} | {accuracy:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a MiniLM sentiment run trained on amazon (for WiSE-FT)")
    args = parser.parse_args()
    probe()
    if args.run:
        wise(args.run)


if __name__ == "__main__":
    main()
