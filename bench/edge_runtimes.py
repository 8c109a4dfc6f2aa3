"""Benchmark: dlpipe's .tflite exports in the real MediaPipe Tasks vs dlpipe's own runtime (issue #12).

One command, from the repository root with the venv active (MediaPipe runs in .venv-mediapipe):

    python bench/edge_runtimes.py [--image-run RUN] [--image-set KEY=VALUE ...] [--text-run RUN] [--minilm-run RUN] [--work DIR]

Without a run folder it trains one first, into --work: the default image-classify recipe
(EfficientNet-Lite0, 224 px, 5 + 3 epochs) on ../shared/data/hymenoptera/train, the default
sentiment recipe (BiLSTM) and MiniLM (`--minilm-epochs`, default 2) on the amazon sentences.
Then, for every .tflite variant (image: float32, float16, dynamic, int8; text: float32, float16,
dynamic; MiniLM: `--minilm-formats`), exported with `dlpipe export`'s code: file size, accuracy of
the Keras model, of dlpipe's runtime on the file and of MediaPipe's ImageClassifier/TextClassifier
on the file, the share of inputs where MediaPipe and dlpipe give the same label, and MediaPipe's
median latency per input (Python, one classify() call). Images are all 245 photos, fed to MediaPipe
raw (it resizes by sampling, without dlpipe's centre crop) and as dlpipe prepares them (PNG at the
input size). Texts: yelp (unseen domain, 1000 sentences). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PHOTOS = SHARED / "hymenoptera" / "train"
AMAZON, YELP = SHARED / "sentiment_sentences" / "amazon_cells_labelled.txt", SHARED / "sentiment_sentences" / "yelp_labelled.txt"
IMAGE_FORMATS = ("tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")
TEXT_FORMATS = ("tflite", "tflite-float16", "tflite-dynamic")
ANCHORS = ("MediaPipe Model Maker anchors (their published numbers, not measured here): EfficientNet-Lite0 image "
           "classifier 13.5 MB float; SST-2 average word embedding 81.0% / 776 KB; MobileBERT 90.4% / 28.4 MB")


def train(pipeline: str, data: Path, out: Path, sets: list[str]) -> Path:
    from dlpipe.pipelines import api

    if not (out / "model.keras").is_file():
        api.run(pipeline, data=str(data), out=out, sets=["train.progress=none", "train.tensorboard=false",
                                                         "export.formats=[keras]", *sets], echo=print)
    return out


def predictions(runtime, inputs: list, batch_size: int = 32) -> list[str]:
    """dlpipe's labels for `inputs` (paths or texts), through the runtime's task, in order."""
    import numpy as np

    collected = runtime.task.collect_inputs(inputs) if runtime.task.name == "image" else None
    labels = {}
    if collected is None:
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start:start + batch_size]
            for index, row in enumerate(runtime.predict(chunk)):
                labels[start + index] = runtime.class_names[int(np.argmax(row))]
        return [labels[i] for i in range(len(inputs))]
    for prepared in runtime.task.batches(collected, runtime.preprocessing, batch_size):
        if prepared.readable:
            for key, row in zip(prepared.readable, runtime.predict(prepared.batch)):
                labels[key] = runtime.class_names[int(np.argmax(row))]
    return [labels[str(p)] for p in inputs]


def staged_photos(photos: list[Path], prep, folder: Path) -> list[Path]:
    """Each photo as dlpipe prepares it (centre crop, antialiased resize), saved as PNG at the input size."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from dlpipe.data.images import tf_path
    from dlpipe.data.preprocess import load_image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for photo in photos:
        pixels = load_image(tf.constant(tf_path(str(photo))), prep).numpy()
        target = folder / f"{photo.parent.name}_{photo.stem}.png"
        Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(target)
        out.append(target)
    return out


def top(answer) -> list[str] | None:
    if isinstance(answer, dict):
        print("MediaPipe refused the file:", answer["error"])
        return None
    return [max(categories, key=lambda c: c["score"])["category_name"] for categories in answer]


def share(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b)) / max(len(a), 1)


def _architecture(run: Path) -> str:
    """The run's model.architecture (config.yaml), as the table names it."""
    import yaml

    architecture = (yaml.safe_load((run / "config.yaml").read_text()).get("model") or {}).get("architecture", "?")
    return {"minilm": "MiniLM-L6", "bilstm": "BiLSTM", "gru": "GRU", "lstm": "LSTM"}.get(architecture, architecture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-run")
    parser.add_argument("--image-set", action="append", default=[], metavar="KEY=VALUE",
                        help="--set for the image run the command trains (without --image-run), e.g. "
                             "preprocess.resize=stretch and preprocess.sampling=mediapipe")
    parser.add_argument("--text-run")
    parser.add_argument("--minilm-run")
    parser.add_argument("--minilm-epochs", type=int, default=2)
    parser.add_argument("--minilm-formats", default="tflite,tflite-dynamic")
    parser.add_argument("--skip", default="", help="comma-separated: image, text, minilm")
    parser.add_argument("--work", default=None, help="folder for trained runs and exports (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="dlpipe-edge-bench-"))
    skip = set(filter(None, args.skip.split(",")))
    import dlpipe.models.runtimes  # noqa: F401  (import dlpipe before tests/ joins the path: tests/dlpipe is a folder)
    sys.path.append(str(ROOT / "tests"))
    from edge.mediapipe_env import run_mediapipe

    from dlpipe.data.text import read_labelled_text
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.pipelines.exporting import export_run

    rows = []

    def measure(kind: str, model: str, run: Path, fmt: str, inputs: list, truth: list[str], keras_labels: list[str],
                staged: list | None = None) -> None:
        artifact = export_run(run, fmt, work / f"{run.name}-exports")
        runtime = load_runtime(artifact)
        ours = predictions(runtime, inputs if kind == "text" else [Path(p) for p in inputs])
        jobs = [{"model": str(artifact), ("texts" if kind == "text" else "images"): [str(i) for i in inputs]}]
        if staged:
            jobs.append({"model": str(artifact), "images": [str(p) for p in staged]})
        answer = run_mediapipe({kind: jobs}, timeout=3600)
        theirs = [top(result) for result in answer[kind]]
        seconds = answer["seconds"][kind]
        row = {"model": model, "format": fmt, "MB": artifact.stat().st_size / 1e6, "n": len(inputs),
               "keras_acc": share(keras_labels, truth), "dlpipe_acc": share(ours, truth),
               "mediapipe_acc": share(theirs[0], truth) if theirs[0] else None,
               "agree": share(theirs[0], ours) if theirs[0] else None,
               "agree_prepared": share(theirs[1], ours) if staged and theirs[1] else None,
               "mediapipe_acc_prepared": share(theirs[1], truth) if staged and theirs[1] else None,
               "mediapipe_ms": seconds[0] * 1000 if seconds[0] else None,
               "dlpipe_parity": (json.loads((artifact.parent / "artifacts.json").read_text())[artifact.name]
                                 .get("parity", {}).get("top1_agreement"))}
        print(json.dumps(row), flush=True)
        rows.append(row)

    if "image" not in skip:
        run = Path(args.image_run) if args.image_run else train("image-classify", PHOTOS, work / "image", args.image_set)
        photos = sorted(p for p in PHOTOS.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        truth = [p.parent.name for p in photos]
        keras = load_runtime(run / "model.keras")
        keras_labels = predictions(keras, photos)
        staged = staged_photos(photos, keras.preprocessing, work / "staged")
        for fmt in IMAGE_FORMATS:
            measure("image", f"EfficientNet-Lite0 ({keras.preprocessing.image_size} px)", run, fmt,
                    [str(p) for p in photos], truth, keras_labels, staged)
    yelp = read_labelled_text([YELP])
    texts, truth = [" ".join(t.split()) for t in yelp.texts], [str(label) for label in yelp.labels]
    for name, given, sets, formats in (
            ("text", args.text_run, [], TEXT_FORMATS),
            ("minilm", args.minilm_run, ["model.architecture=minilm", f"train.epochs={args.minilm_epochs}"],
             tuple(args.minilm_formats.split(",")))):
        if name in skip:
            continue
        run = Path(given) if given else train("sentiment", AMAZON, work / name, sets)
        keras = load_runtime(run / "model.keras")
        keras_labels = predictions(keras, texts)
        for fmt in formats:
            measure("text", _architecture(run), run, fmt, texts, truth, keras_labels)

    print()
    print("| model | format | size (MB) | inputs | Keras acc | dlpipe runtime acc | MediaPipe acc (raw) | "
          "MediaPipe = dlpipe (raw) | MediaPipe acc (dlpipe-prepared) | MediaPipe = dlpipe (prepared) | "
          "MediaPipe ms/input |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    for row in rows:
        ms = "–" if row["mediapipe_ms"] is None else f"{row['mediapipe_ms']:.2f}"
        print(f"| {row['model']} | {row['format']} | {row['MB']:.2f} | {row['n']} | {pct(row['keras_acc'])} | "
              f"{pct(row['dlpipe_acc'])} | {pct(row['mediapipe_acc'])} | {pct(row['agree'])} | "
              f"{pct(row['mediapipe_acc_prepared'])} | {pct(row['agree_prepared'])} | {ms} |")
    print()
    print(ANCHORS)
    print(f"runs and exports in {work}")


if __name__ == "__main__":
    main()
