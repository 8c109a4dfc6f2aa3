"""PyTorch side of bench/lite0_train_throughput.py (issue 31, item 5); runs in the bench-only venv that has torch.

    python bench/lite0_train_throughput_torch.py IMAGES.npz WEIGHTS.pth WARMUP STEPS [channels_last|contiguous_format]

The hand-written EfficientNet-Lite0 of bench/torch_reference_efficientnet_lite0.py (timm does not import in the
bench venv: its torchvision does not match its torch), loaded strictly from the same .pth dlpipe ports, its ImageNet
top swapped for dlpipe's head (dropout 0.2, Linear 1280 -> 2), trained whole in train mode (batch-norm statistics
updated) with torch.optim.Adam and cross-entropy, the batches cycling through the file's images in order. Prints one
JSON line: images/s over STEPS steps after WARMUP untimed ones, and torch's thread count (its default).
channels_last (the default here) puts model and images in NHWC memory order: on this CPU torch's default NCHW
backward pass through the depthwise convolutions took 24-33 s a step against 3-5 s in channels_last, so the
comparison gives PyTorch its faster layout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference_efficientnet_lite0 import load_reference  # noqa: E402

BATCH, RATE = 32, 1e-4


def main(data: str, weights: str, warmup: int, steps: int, layout: str = "channels_last") -> None:
    arrays = np.load(data)
    memory_format = getattr(torch, layout)  # torch.channels_last or torch.contiguous_format
    images = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    labels = torch.from_numpy(arrays["labels"]).long()
    model = load_reference(weights)
    model._fc = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 2))
    model = model.to(memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = None
    for step in range(warmup + steps):
        rows = torch.arange(step * BATCH, (step + 1) * BATCH) % len(images)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images[rows]), labels[rows])
        loss.backward()
        optimizer.step()
        if step + 1 == warmup:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": round(steps * BATCH / seconds, 1), "seconds": round(seconds, 2),
                      "threads": {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads()},
                      "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                      "final_loss": round(float(loss), 4), "memory_format": layout,
                      "versions": {"torch": torch.__version__}}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
