"""image-multilabel's recipes: which head the data picks, and the heat-map head's training.

`model.backbone=auto` (the default) picks by what the labels come with. A COCO file has boxes: the heat-map head
(`centernet_coco`: the detect task's COCO CenterNet, a label's score its highest heat-map peak,
`models/tasks/multilabel/heatmap_head.py`) learns where each labelled thing is. A CSV has label names only: the lse
head on ImageNet EfficientNet-Lite0 (BENCHMARKS.md, "Multi-label images").

The heat-map head takes the detect task's measured training (320 px, 3 epochs of neck and heads, then 44 of
everything at 2e-3 x 0.1 with cosine decay, batch 8, gradients clipped at 5, a moving average of the weights, the
epoch with the best validation loss, the detect task's box-aware augmentation instead of the photo-level one) and no
refit (BENCHMARKS.md, "Multi-label images": by 5-fold cross-validation micro-F1 0.913 with 44 fine-tuning epochs,
0.890 with 20).
An explicit --set always wins.
"""

from __future__ import annotations

from dlpipe.data.multilabel import lists_boxes
from dlpipe.pipelines.detect.model import COCO_START as HEATMAP_START
from dlpipe.pipelines.detect.model import LEARNING_RATE as DETECTOR_LEARNING_RATE
from dlpipe.pipelines.recipes import Choices, Recipe

LABELS_ONLY_BACKBONE = "efficientnet_lite0"


def _boxes(choices: Choices) -> bool:
    return bool(choices.data()) and lists_boxes(choices.data())


def _heatmap(choices: Choices) -> bool:
    return choices["model.backbone"] == HEATMAP_START or (choices["model.backbone"] == "auto" and _boxes(choices))


def _detector_training(choices: Choices) -> dict:
    from dlpipe.pipelines.detect.model import DetectModelConfig
    from dlpipe.pipelines.detect.train import DetectTrainConfig

    detect = DetectTrainConfig()
    keys = ("epochs", "finetune_epochs", "finetune_lr_factor", "batch_size", "lr_schedule", "early_stopping_patience",
            "clipnorm", "ema")
    return {"model": {"image_size": DetectModelConfig().image_size},
            "train": {**{key: getattr(detect, key) for key in keys}, "learning_rate": DETECTOR_LEARNING_RATE,
                      "refit": False, "monitor": "val_loss"},
            "augment": {"enabled": False}}


RECIPES = (
    Recipe("boxes", lambda c: c["model.backbone"] == "auto" and _boxes(c), {"model": {"backbone": HEATMAP_START}},
           "a COCO file's boxes teach the heat-map head where each label is (BENCHMARKS.md, Multi-label images)"),
    Recipe("labels only", lambda c: c["model.backbone"] == "auto" and bool(c.data()) and not _boxes(c),
           {"model": {"backbone": LABELS_ONLY_BACKBONE}},
           "a CSV names labels only: the lse head on EfficientNet-Lite0 (BENCHMARKS.md, Multi-label images)"),
    Recipe(HEATMAP_START, _heatmap, _detector_training,
           "the detect task's training (BENCHMARKS.md, Detection: training on your boxes; Multi-label images)"),
)
