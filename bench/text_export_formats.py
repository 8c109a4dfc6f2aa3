"""Benchmark: every export of the sentiment models side by side: size, single-text latency, accuracy, agreement.

One command, from the repository root with the venv active:

    python bench/text_export_formats.py [--only bilstm gru transformer minilm] [--runs 200]

Each model is trained once with `dlpipe run sentiment` on the "both 80/20" setting of
bench/sentiment_domains.py (amazon + yelp review sentences, seeded stratified 80/20 split) and exported
as .keras, SavedModel (raw strings in) and TFLite float32, float16 and dynamic-range (token ids in,
tokenised by dlpipe from the vocabulary shipped beside the file). Every artifact is then loaded with
`dlpipe.models.runtimes.load_runtime`, the code `dlpipe evaluate` uses, and measured on the validation
texts: file size, latency of single-text calls (tokenisation included; median and p90 over --runs),
accuracy, and top-1 agreement with the Keras model. TFLite runs with 2 threads, the TensorFlow rows
with TensorFlow's default pools (all cores), so the rows compare the same 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sentiment_sentences"
DATA_SETS = [f"load.path=[{DATA / 'amazon_cells_labelled.txt'}, {DATA / 'yelp_labelled.txt'}]", "load.val_split=0.2"]
EXPORTS = "export.formats=[keras, savedmodel, tflite, tflite-float16, tflite-dynamic]"
MODELS = {
    "bilstm": ["model.architecture=bilstm"],
    "gru": ["model.architecture=gru"],
    "transformer": ["model.architecture=transformer", "model.num_layers=2"],
    "minilm": ["model.architecture=minilm", "train.epochs=1"],  # one epoch keeps the run short; see BENCHMARKS.md
}
ARTIFACTS = {
    "Keras (.keras)": "model.keras",
    "SavedModel": "savedmodel",
    "TFLite float32": "model.tflite",
    "TFLite float16": "model_float16.tflite",
    "TFLite dynamic range": "model_dynamic.tflite",
}


def size_of(path: Path) -> int:
    """Bytes of a file, or of all files in a SavedModel folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def latencies(predict, text: str, runs: int) -> tuple[float, float]:
    predict([text])  # warm up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict([text])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def validation_texts() -> tuple[list[str], list[str]]:
    """The validation texts and label names the pipeline's load stage picks for DATA_SETS."""
    from dlpipe.pipelines import api
    from dlpipe.models.tasks import get_task
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.stage import RunContext

    spec = get_pipeline("sentiment")
    config = api.resolve_config("sentiment", sets=DATA_SETS)
    ctx = RunContext(out_dir=ROOT / "bench" / "results", seed=config.seed, config=config, task=get_task(spec.task),
                     echo=lambda _: None)
    spec.stage_class("load")(config["load"]).run(ctx)
    return list(ctx.val.inputs), [ctx.class_names[label] for label in ctx.val.labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(MODELS), help="models to run (default: all)")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    import numpy as np

    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines import api

    texts, label_names = validation_texts()
    rows = []
    for name, model_sets in MODELS.items():
        if args.only and name not in args.only:
            continue
        out = ROOT / "bench" / "results" / f"sentiment-export-{name}"
        result = api.run("sentiment", out=out, sets=[*DATA_SETS, *model_sets, EXPORTS, "train.progress=none"],
                         overwrite=True, echo=lambda line: None)
        export_seconds = result.report["stages"]["export"]["seconds"]
        print(f"{name}: run accuracy {result.metrics['accuracy']:.3f}, export stage {export_seconds:.0f} s", flush=True)
        keras_top1 = None
        for artifact, file_name in ARTIFACTS.items():
            path = out / file_name
            runtime = load_runtime(path, num_threads=2) if path.suffix == ".tflite" else load_runtime(path)
            truth = np.array([runtime.class_names.index(label) for label in label_names])
            top1 = np.concatenate([runtime.predict(texts[i:i + 64]) for i in range(0, len(texts), 64)]).argmax(1)
            keras_top1 = top1 if keras_top1 is None else keras_top1
            p50, p90 = latencies(runtime.predict, texts[0], args.runs)
            rows.append((name, artifact, size_of(path), p50, p90, float((top1 == truth).mean()),
                         float((top1 == keras_top1).mean())))
            print(rows[-1], flush=True)
    print(f"\n{date.today()} · `python bench/text_export_formats.py` · {len(texts)} validation texts · "
          f"{args.runs} single-text calls per latency · {os.cpu_count()} CPU cores\n")
    print("| model | artifact | size (MB) | latency p50 / p90 (ms) | val accuracy | top-1 agreement with Keras |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, artifact, size, p50, p90, accuracy, agreement in rows:
        print(f"| {name} | {artifact} | {size / 1e6:.2f} | {p50:.1f} / {p90:.1f} | {accuracy:.3f} | {agreement:.3f} |")


if __name__ == "__main__":
    main()
