"""Benchmark: the MiniLM text batch job, Keras vs the dynamic-range .tflite, in one run (issue 13).

One command, from the repository root with the venv active, given a MiniLM sentiment run folder that
also holds `model_dynamic.tflite` (`dlpipe export RUN --format tflite --quantize dynamic --out RUN`):

    python bench/text_batch_throughput.py [--run RUN] [--limit 500]

For each artifact, on the same sentences (yelp_labelled, another domain than the training reviews):
  tokenise   WordPiece encoding alone (the runtime's feed), batches of 32,
  job 1      `dlpipe predict --out`'s batch job with one batch in flight (tokenise, then run, in turn),
  job 2      the same with two batches in flight (the default): one batch's tokenisation overlaps the
             other's inference,
and the top-1 agreement of each with the Keras model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT.parent / "shared" / "data" / "sentiment_sentences" / "yelp_labelled.txt"
DEFAULT_RUN = ROOT / "bench" / "results" / "minilm-amazon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=str(DEFAULT_RUN))
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows, run_batch_job

    table = []
    labels: dict[str, list[str]] = {}
    for artifact in ("keras", "dynamic"):
        runtime = load_runtime(args.run, artifact)
        lines = [line.split("\t")[0] for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
        with tempfile.TemporaryDirectory() as folder:
            listing = Path(folder) / "sentences.txt"
            listing.write_text("\n".join(lines[:args.limit]) + "\n", encoding="utf-8")
            inputs = runtime.task.collect_inputs([str(listing)])
            texts = [inputs.payloads[key] for key in inputs.ids]
            encode = runtime.task._encoder(runtime.preprocessing, runtime.side)
            runtime.predict(texts[:args.batch_size])  # warm up
            encode(texts[:args.batch_size])
            started = time.perf_counter()
            for start in range(0, len(texts), args.batch_size):
                encode(texts[start:start + args.batch_size])
            tokenise = len(texts) / (time.perf_counter() - started)
            rates = {}
            for in_flight in (1, 2):
                out = Path(folder) / f"rows-{in_flight}.jsonl"
                started = time.perf_counter()
                run_batch_job(lambda todo: result_rows(runtime, inputs.subset(todo), 2, args.batch_size, in_flight=in_flight),
                              inputs.ids, out)
                rates[in_flight] = len(texts) / (time.perf_counter() - started)
                rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
                labels[f"{artifact}-{in_flight}"] = [row.get("label", "") for row in rows]
        agreement = sum(a == b for a, b in zip(labels[f"{artifact}-2"], labels["keras-1"])) / len(labels["keras-1"])
        table.append((f"{artifact} ({runtime.path.name})", tokenise, rates[1], rates[2], agreement, os.getloadavg()[0]))
        print(table[-1], flush=True)
    print(f"\n{date.today()} · `python bench/text_batch_throughput.py --limit {args.limit}` · {len(texts)} yelp "
          f"sentences · batch {args.batch_size} · {os.cpu_count()} CPU cores\n")
    print("| artifact | tokenise only, texts/s | job, 1 batch in flight | job, 2 in flight | vs Keras (2 in flight) "
          "| top-1 agreement with Keras | load after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    keras_rate = table[0][3]
    for name, tokenise, one, two, agreement, load in table:
        print(f"| {name} | {tokenise:.0f} | {one:.1f} | {two:.1f} | {two / keras_rate:.2f}x | {agreement:.3f} | {load:.1f} |")


if __name__ == "__main__":
    main()
