"""detect's recipes: the fine-tuning rate measured for each start.

The dataclass defaults are the COCO start's (coco-detector's CenterNet-MobileNetV3): fine-tuned whole at
2e-3 x 0.1, since at 1e-3 it diverged even with the head trained first. The ImageNet EfficientNet-Lite0 start
has batch normalisation throughout and a new pyramid and heads, and fine-tunes at 2e-3 x 0.5 (BENCHMARKS.md,
"Detection: training on your boxes"). An explicit --set always wins.
"""

from __future__ import annotations

from dlpipe.pipelines.recipes import Recipe

RECIPES = (
    Recipe("efficientnet_lite0", lambda c: c["model.encoder"] == "efficientnet_lite0",
           {"train": {"finetune_lr_factor": 0.5}},
           "the ImageNet start fine-tunes at 1e-3 (BENCHMARKS.md, Detection: training on your boxes)"),
)
