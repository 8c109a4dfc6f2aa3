"""Stage `train` (detect): the shared phases with CenterNet's loss.

The neck and heads train with the encoder frozen, then the whole network fine-tunes (a detector's
features must learn to localise, so every block unfreezes by default), with checkpoints and resume
after a kill. The fine-tuning runs its cosine schedule to the end (no early stopping) and keeps the epoch
with the best validation loss; with mosaic augmentation (preprocess.mosaic) this beat early stopping at
patience 10 on 43 epochs without mosaic (BENCHMARKS.md, "Detection: training on your boxes").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import TrainConfig
from dlpipe.pipelines.training.phases import FitSettings
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class DetectTrainConfig(TrainConfig):
    """Phases, optimizer, schedule, early stopping and progress output of the detector."""

    epochs: int = option(3, "epochs of the first phase (neck and heads, with a pretrained encoder frozen)")
    finetune_epochs: int = option(52, "epochs of the second phase, with the encoder's blocks unfrozen")
    finetune_lr_factor: float = option(0.1, "fine-tuning learning rate = learning_rate * this")
    learning_rate: float | Literal["auto"] | None = option(None, "learning rate of the first phase (default: the "
                                                                 "model's advice, 2e-3); auto: run the finder first")
    batch_size: int = option(8, "photos per step; lower it if memory runs out")
    lr_schedule: Literal["constant", "cosine", "plateau"] = option(
        "cosine", "constant, cosine decay over each phase, or plateau (halve when the monitored metric stalls)")
    early_stopping_patience: int = option(0, "stop a phase after this many epochs without improvement (0: never; "
                                             "the default runs the cosine schedule to its end)")
    refit: bool | Literal["auto"] = option(False, "retrain on train + validation for the chosen epochs after "
                                                  "selecting on validation (doubles the training time)")
    clipnorm: float | None = option(5.0, "clip each gradient's norm to this (none: off): fine-tuning a whole "
                                         "detector at once can otherwise diverge")
    cv_folds: int = option(0, "K-fold cross-validation before the final run (OUT/folds/K/, resumable per fold): "
                              "pooled mAP / AP50 over every photo with 95% intervals in metrics.json (0: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds", f"must be 0 (off) or at least 2. Received: {self.cv_folds}")


class DetectTrainStage(TrainStage):
    """Fit the detector: neck and heads with the encoder frozen, then everything; resumable."""

    config_cls = DetectTrainConfig

    def fit_settings(self, ctx: RunContext) -> FitSettings:
        from dlpipe.models.centernet_loss import CenterNetLoss

        return FitSettings(loss=CenterNetLoss(len(ctx.class_names)), metrics=[],
                           optimizer=self.setting(ctx, "optimizer", "adam"),
                           warmup_fraction=self.setting(ctx, "warmup_fraction", 0.0), clipnorm=self.config.clipnorm)
