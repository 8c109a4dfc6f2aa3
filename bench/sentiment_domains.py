"""Benchmark: sentiment models across review domains, against the VADER lexicon baseline.

One command, from the repository root with the venv active (VADER is a benchmark-only dependency):

    pip install vaderSentiment && python bench/sentiment_domains.py [--only bilstm gru ...] [--settings amazon→yelp ...]

Settings on ../shared/data/sentiment_sentences: train on amazon and validate on yelp, the reverse,
and a seeded stratified 80/20 split of both files together. For each, every model in MODELS is
trained with `dlpipe run sentiment` and scored on the validation texts; VADER (compound >= 0 is
positive) is scored on the same texts. Prints a markdown table of accuracy (and points above VADER),
training time and, for the small models, the size of their dynamic-range .tflite (issue 15's target:
at most a tenth of MiniLM's). Raw rows go to bench/results/sentiment_domains.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sentiment_sentences"
AMAZON = str(DATA / "amazon_cells_labelled.txt")
YELP = str(DATA / "yelp_labelled.txt")

SETTINGS = {
    "amazon→yelp": [f"load.path={AMAZON}", f"load.val_path={YELP}"],
    "yelp→amazon": [f"load.path={YELP}", f"load.val_path={AMAZON}"],
    "both 80/20": [f"load.path=[{AMAZON}, {YELP}]", "load.val_split=0.2"],
}
SMALL_EXPORT = ["export.formats=[keras, tflite-dynamic]"]
MODELS = {
    # the recipe of 2026-11-23 (learnt 64-wide embeddings, 20,000 words, one phase)
    **{f"{kind} (no pretrained)": [f"model.architecture={kind}", "model.embeddings=none", "model.embedding_dim=64",
                                   "preprocess.max_tokens=20000", "train.finetune_epochs=0", *extra, *SMALL_EXPORT]
       for kind, extra in (("lstm", []), ("gru", []), ("bilstm", []), ("transformer", ["model.num_layers=2"]))},
    # the shipped defaults (frozen MiniLM rows, 128 wide, 16,000 words, then fine-tuned) for each architecture
    **{f"{kind} + minilm": [f"model.architecture={kind}", "model.embeddings=minilm", *extra, *SMALL_EXPORT]
       for kind, extra in (("lstm", []), ("gru", []), ("bilstm", []), ("transformer", ["model.num_layers=2"]))},
    # the shipped default at other widths (issue 15: the .tflite size follows embedding rows x width)
    **{f"gru + minilm, {width} wide": ["model.architecture=gru", "model.embeddings=minilm", f"model.embedding_dim={width}",
                                       *SMALL_EXPORT] for width in (64, 80, 96)},
    # the same GRU on MiniLM's WordPiece pieces, pruned (issue 15: no word out of vocabulary, a small vocab.txt)
    **{f"gru + minilm pieces ({pieces:,})": ["preprocess.tokenizer=wordpiece", f"preprocess.max_tokens={pieces}",
                                             "model.architecture=gru", "model.embeddings=minilm", *SMALL_EXPORT]
       for pieces in (6000, 8000, 12000)},
    "minilm (fine-tuned)": ["model.architecture=minilm", "train.epochs=3"],  # the recipe of 2026-11-23
    # recipe search for MiniLM (issue 14): learning rate, epochs, label smoothing, batch size
    **{f"minilm, {label}": ["model.architecture=minilm", "export.formats=[keras]", *sets] for label, sets in (
        ("3 epochs at 1e-4", ["train.epochs=3", "train.learning_rate=1e-4"]),
        ("5 epochs at 3e-5", ["train.epochs=5", "train.learning_rate=3e-5"]),
        ("4 epochs at 5e-5, label smoothing 0.1", ["train.epochs=4", "train.label_smoothing=0.1"]),
        ("3 epochs at 5e-5, batch 16", ["train.epochs=3", "train.batch_size=16"]),
    )},
    # the larger pretrained encoder (issue 14: MiniLM's recipes stay under 0.93 across sites); fetch it first with
    # bash scripts/fetch_mpnet.sh
    "mpnet (fine-tuned)": ["model.architecture=mpnet", "train.epochs=3", "train.batch_size=16",
                           "preprocess.sequence_length=48", "export.formats=[keras]"],
    "minilm (head first, then fine-tuned)": ["model.architecture=minilm", "preprocess.sequence_length=32",
                                             "model.freeze_pretrained=true", "train.epochs=1",
                                             "train.finetune_epochs=3"],
}


def vader_accuracy(texts: list[str], labels: list[int]) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    predicted = [int(analyzer.polarity_scores(text)["compound"] >= 0) for text in texts]
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def main() -> None:
    from dlpipe import atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS), help="settings to run (default: all)")
    args = parser.parse_args()
    settings = {name: sets for name, sets in SETTINGS.items() if not args.settings or name in args.settings}
    from dlpipe.pipelines import api
    from dlpipe.models.tasks import get_task
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.stage import RunContext

    spec = get_pipeline("sentiment")

    table: dict[str, dict[str, str]] = {}
    raw: list[dict] = []
    for setting, data_sets in settings.items():
        # VADER scores exactly the validation texts that the pipeline's load stage picks for this setting
        config = api.resolve_config("sentiment", sets=data_sets)
        ctx = RunContext(out_dir=ROOT / "bench" / "results", seed=config.seed, config=config,
                         task=get_task(spec.task), echo=lambda _: None)
        spec.stage_class("load")(config["load"]).run(ctx)
        texts, labels = ctx.val.inputs, ctx.val.labels
        positive = ctx.class_names.index("1")
        vader = vader_accuracy(texts, [int(label == positive) for label in labels])
        table.setdefault("VADER (lexicon)", {})[setting] = f"{vader:.3f}"
        print(f"{setting} VADER: {vader:.3f}", flush=True)
        for name, model_sets in MODELS.items():
            if args.only and name not in args.only:
                continue
            out = ROOT / "bench" / "results" / f"sentiment-{name}-{setting.replace('→', '-to-').replace(' ', '_').replace('/', '_')}"
            started = time.perf_counter()
            result = api.run("sentiment", out=out, sets=[*data_sets, *model_sets, "train.progress=none"],
                             overwrite=True, echo=lambda line: None)
            seconds = time.perf_counter() - started
            train_seconds = result.report["stages"]["train"]["seconds"]
            accuracy = result.metrics["accuracy"]
            tflite = out / "model_dynamic.tflite"
            vocab = 0
            if tflite.is_file():
                from dlpipe.models.tflite_metadata import associated_files

                vocab = sum(len(data) for file, data in associated_files(tflite).items() if "vocab" in file)
            size = f", {tflite.stat().st_size / 1e6:.2f} MB of which vocab {vocab / 1e6:.2f}" if tflite.is_file() else ""
            table.setdefault(name, {})[setting] = (f"{accuracy:.3f} ({100 * (accuracy - vader):+.1f}; "
                                                   f"{train_seconds:.0f} s{size})")
            raw.append({"setting": setting, "model": name, "accuracy": accuracy, "vader": vader,
                        "train_seconds": train_seconds, "dynamic_tflite_bytes": tflite.stat().st_size if tflite.is_file() else None})
            print(f"{setting} {name}: {accuracy:.3f}, train {train_seconds:.0f} s, run {seconds:.0f} s{size}", flush=True)
            atomic.write_json(ROOT / "bench" / "results" / "sentiment_domains.json", raw)
    print(f"\n{date.today()} · `python bench/sentiment_domains.py` · {os.cpu_count()} CPU cores · "
          f"Python {platform.python_version()}\n")
    print("| model | " + " | ".join(settings) + " |")
    print("| --- |" + " --- |" * len(settings))
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells.get(s, "–") for s in settings) + " |")
    print("\nCells: validation accuracy (points above VADER; training-stage seconds, dynamic-range .tflite size).")


if __name__ == "__main__":
    main()
