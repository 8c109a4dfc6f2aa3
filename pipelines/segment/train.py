"""Stage `train` (segment): the shared phases with the U-Net's defaults.

The per-pixel softmax trains with sparse cross-entropy per pixel: the decoder with the encoder frozen, then the
top encoder blocks (through `ctx.fine_tuning`), with checkpoints and resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option
from dlpipe.pipelines.training.config import TrainConfig
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class SegmentTrainConfig(TrainConfig):
    """Phases, optimizer, schedule, early stopping and progress output of the U-Net."""

    epochs: int = option(8, "epochs of the first phase (the decoder, with a pretrained encoder frozen)")
    finetune_epochs: int = option(4, "epochs of the second phase, with the top encoder blocks unfrozen")
    unfreeze_blocks: int = option(4, "encoder blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    learning_rate: float | Literal["auto"] | None = option(0.001, "learning rate of the first phase; auto: run the learning-rate finder first")
    batch_size: int = option(8, "images per step; lower it if memory runs out")


class SegmentTrainStage(TrainStage):
    """Fit the U-Net: the decoder with the encoder frozen, then the top encoder blocks; resumable."""

    config_cls = SegmentTrainConfig
