"""Print the PyTorch reference numbers that tests/models/test_efficientnet_lite.py holds as literals.

Run once, when the port or the weights change, and paste the output into the test. Needs torch,
which dlpipe never installs: use a throw-away venv whose packages the project venv can see
(from the repository root):

    python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch==2.13.0 numpy pillow
    PYTHONPATH=/tmp/torchref/lib/python3.11/site-packages .venv/bin/python bench/efficientnet_lite0_reference.py

Prints: (1) for the first two photos (sorted) of ants and bees in ../shared/data/hymenoptera/train,
preprocessed by `preprocess_photo`, the reference's top-5 classes with their softmax probabilities
and logits, plus the gap between the 5th and 6th logit (a tiny gap would make the top-5 test flaky);
(2) a few tensor values as torch.load reads them, to pin the reader's stride handling; (3) a tiny
legacy-format file written by torch.save itself, base64-encoded, for the reader's format test.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference_efficientnet_lite0 import (  # noqa: E402
    HYMENOPTERA, load_reference, preprocess_photo, reference_logits, weights_path,
)

PHOTOS_PER_CLASS = 2
TENSOR_PROBES = {  # name -> index expression into the PyTorch-shaped tensor
    "_conv_stem.weight": (0, slice(None), 0, 0),
    "_blocks.1._depthwise_conv.weight": (5, 0, 2, slice(None)),
    "_blocks.15._project_conv.weight": (319, slice(0, 3), 0, 0),
    "_fc.weight": (999, slice(0, 3)),
    "_bn1.running_var": (slice(0, 3),),
}


def photos() -> list[Path]:
    chosen = []
    for folder in ("ants", "bees"):
        chosen += sorted((HYMENOPTERA / folder).glob("*.jpg"))[:PHOTOS_PER_CLASS]
    return chosen


def tiny_legacy_file() -> bytes:
    """Non-contiguous, offset, int64 and half tensors saved in the legacy format by torch itself."""
    base = torch.arange(10, dtype=torch.float32)
    state = {
        "transposed": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),  # strides (1, 3)
        "offset_view": base[4:7],  # storage offset 4 into a 10-element storage
        "counts": torch.tensor([1, -2, 3], dtype=torch.int64),
        "half": torch.tensor([0.5, -1.25], dtype=torch.float16),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = load_reference()
    paths = photos()
    logits = reference_logits(model, np.stack([preprocess_photo(path) for path in paths]))
    probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    print(f"# torch {torch.__version__}; photos preprocessed by preprocess_photo (PIL bilinear 256, crop 224)")
    print("REFERENCE = {  # photo -> [(class, softmax probability, logit)] for the top 5")
    for path, row, probs in zip(paths, logits, probabilities):
        order = np.argsort(-row)
        entries = ", ".join(f"({int(i)}, {probs[i]:.5f}, {row[i]:.4f})" for i in order[:5])
        gap = row[order[4]] - row[order[5]]
        print(f'    "{path.parent.name}/{path.name}": [{entries}],  # 5th-6th logit gap {gap:.3f}')
    print("}")
    state = torch.load(str(weights_path()), map_location="cpu", weights_only=True)
    print("TENSOR_PROBES = {  # values as torch.load shows them")
    for name, index in TENSOR_PROBES.items():
        values = ", ".join(f"{v:.7g}" for v in state[name][index].reshape(-1).tolist())
        print(f'    "{name}": [{values}],')
    print("}")
    encoded = base64.b64encode(tiny_legacy_file()).decode()
    lines = "\n".join(f'    "{encoded[i:i + 96]}"' for i in range(0, len(encoded), 96))
    print(f"TINY_LEGACY_FILE = base64.b64decode(\n{lines}\n)")


if __name__ == "__main__":
    main()
