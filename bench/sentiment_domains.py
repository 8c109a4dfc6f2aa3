"""Benchmark: sentiment models across review domains, against the VADER lexicon baseline.

One command, from the repository root with the venv active (VADER is a benchmark-only dependency):

    pip install vaderSentiment && python bench/sentiment_domains.py [--only bilstm gru ...]

Settings on ../shared/data/sentiment_sentences: train on amazon and validate on yelp, the reverse,
and a seeded stratified 80/20 split of both files together. For each, every model in MODELS is
trained with `dlpipe run sentiment` and scored on the validation texts; VADER (compound >= 0 is
positive) is scored on the same texts. Prints a markdown table of accuracy and training time.
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
MODELS = {
    "bilstm": ["model.architecture=bilstm"],
    "gru": ["model.architecture=gru"],
    "transformer": ["model.architecture=transformer", "model.num_layers=2"],
    "minilm (fine-tuned)": ["model.architecture=minilm", "train.epochs=3"],
}


def vader_accuracy(texts: list[str], labels: list[int]) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    predicted = [int(analyzer.polarity_scores(text)["compound"] >= 0) for text in texts]
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    args = parser.parse_args()
    from dlpipe.pipelines import api
    from dlpipe.models.tasks import get_task
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.stage import RunContext

    spec = get_pipeline("sentiment")

    table: dict[str, dict[str, str]] = {}
    for setting, data_sets in SETTINGS.items():
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
            table.setdefault(name, {})[setting] = f"{result.metrics['accuracy']:.3f} ({train_seconds:.0f} s)"
            print(f"{setting} {name}: {result.metrics['accuracy']:.3f}, train {train_seconds:.0f} s, run {seconds:.0f} s",
                  flush=True)
    print(f"\n{date.today()} · `python bench/sentiment_domains.py` · {os.cpu_count()} CPU cores · "
          f"Python {platform.python_version()}\n")
    print("| model | " + " | ".join(SETTINGS) + " |")
    print("| --- |" + " --- |" * len(SETTINGS))
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells.get(s, "–") for s in SETTINGS) + " |")
    print("\nCells: validation accuracy (training-stage seconds).")


if __name__ == "__main__":
    main()
