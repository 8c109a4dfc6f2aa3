"""Stage `train` (detect): the shared phases with CenterNet's loss.

The neck and heads train with the encoder frozen, then the whole network fine-tunes (a detector's
features must learn to localise, so every block unfreezes by default), with checkpoints and resume
after a kill. The fine-tuning runs its cosine schedule to the end (no early stopping) and keeps the epoch
with the best validation loss; with mosaic augmentation (preprocess.mosaic) this beat early stopping at
patience 10 on 43 epochs without mosaic (BENCHMARKS.md, "Detection: training on your boxes"). The optimizer keeps
a moving average of the weights (`ema`), which validation, the kept epoch and every export use (fold 0: validation
loss 1.92 at fine-tuning epoch 19, against 2.06 at epoch 25 without it); the fine-tuning was shortened from 52 to 44
epochs, bringing one model on 300 scenes to about 20 CPU-minutes (0.90x the 52-epoch run; BENCHMARKS.md).

`int8_epochs` adds a third phase for a model that will ship as full-integer int8: quantisation-aware
fine-tuning (models/quantize_aware.py), every activation rounded to int8 at the ranges the int8 export will
calibrate, measured once on training photos after the fine-tuning and kept in checkpoints/ for a resume
(BENCHMARKS.md, "int8 after quantisation-aware fine-tuning").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import TrainConfig
from dlpipe.pipelines.training.phases import CHECKPOINT_DIR, FitSettings, Phase, fit_phase
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class DetectTrainConfig(TrainConfig):
    """Phases, optimizer, schedule, early stopping and progress output of the detector."""

    epochs: int = option(3, "epochs of the first phase (neck and heads, with a pretrained encoder frozen)")
    finetune_epochs: int = option(44, "epochs of the second phase, with the encoder's blocks unfrozen")
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

    ema: float = option(0.99, "keep a moving average of the weights at this momentum per step (0.99: over about 100 "
                               "steps, at most a tenth of a phase's) and validate, select and ship it (0: off)")
    int8_epochs: int = option(0, "epochs of quantisation-aware fine-tuning after the fine-tuning, for a model that "
                                 "ships as tflite-int8: activations rounded to int8 where the export rounds them "
                                 "(0: off; 4 on two fold-0 COCO-start models: int8 mAP +1.4 and +2.5 points, the "
                                 "float model's -1.5 and -0.6; BENCHMARKS.md)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds", f"must be 0 (off) or at least 2. Received: {self.cv_folds}")
        require(0.0 <= self.ema < 1.0, "ema", f"must be in [0, 1). Received: {self.ema}")
        require(self.int8_epochs >= 0, "int8_epochs", f"must be 0 (off) or more. Received: {self.int8_epochs}")


# the int8 phase's rate = the last phase's * this: 1e-5 for the COCO start (fold 0, 4 epochs: int8 mAP 0.574 at 1e-5,
# 0.565 at 2e-5; BENCHMARKS.md, "int8 after quantisation-aware fine-tuning")
INT8_LR_FACTOR = 0.05
INT8_CALIBRATION_PHOTOS = 100  # training photos the int8 ranges are measured on, as many as the export calibrates on


class DetectTrainStage(TrainStage):
    """Fit the detector: neck and heads with the encoder frozen, then everything, then optionally int8-aware;
    resumable."""

    config_cls = DetectTrainConfig

    def phases(self, ctx: RunContext, rate: float) -> list[Phase]:
        phases = super().phases(ctx, rate)
        if self.config.int8_epochs:
            phases.append(Phase("int8", self.config.int8_epochs, phases[-1].learning_rate * INT8_LR_FACTOR, None,
                                custom=True))
        return phases

    def fit_custom_phase(self, ctx: RunContext, model: Any, phase: Phase) -> None:
        """The int8 phase: fit a copy of the network that shares its weights and rounds each activation to int8 (the
        heat-map logits and head map too, which the int8 file keeps float: not rounding them measured no better)."""
        from dlpipe.models.quantize_aware import int8_rounded, set_ranges

        rounded = int8_rounded(model)
        set_ranges(rounded, self.int8_ranges(ctx, model, rounded, phase.name))
        data = (self.training_data(ctx, refit=phase.refit), None if phase.refit else self.validation_data(ctx))
        fit_phase(ctx, rounded, dataclasses.replace(phase, custom=False), data, self.config, self.fit_settings(ctx))

    def int8_ranges(self, ctx: RunContext, model: Any, rounded: Any, phase: str) -> dict[str, Any]:
        """The rounding ranges, measured on training photos once per phase (checkpoints/<phase>_ranges.json: a refit
        measures its own) as the int8 export will calibrate: the heads' extremes, the rest narrowed to a percentile
        where the export narrows."""
        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.models.export.percentile_ranges import RANGE_PERCENTILE
        from dlpipe.models.quantize_aware import measure_ranges
        from dlpipe.models.tasks.detect.export import HEAD_LAYERS, int8_ranges_narrowed
        from dlpipe.pipelines.detect.preprocess import box_dataset, training_preprocessing

        saved = ctx.out_dir / CHECKPOINT_DIR / f"{phase}_ranges.json"
        if saved.is_file():  # measured before a kill: the same ranges, so the resumed epochs round alike
            return json.loads(saved.read_text(encoding="utf-8"))
        photos = box_dataset(ctx.train, ctx.task, training_preprocessing(ctx), ctx.class_names, cache=False)
        photos = photos.take(INT8_CALIBRATION_PHOTOS)
        percentile = RANGE_PERCENTILE if int8_ranges_narrowed(model) else None
        heads = rf"^({'|'.join(HEAD_LAYERS)})$"
        ranges = measure_ranges(rounded, batched(photos, self.config.batch_size), heads, percentile)
        atomic.write_text(saved, json.dumps(ranges, indent=1))
        return ranges

    def fit_settings(self, ctx: RunContext) -> FitSettings:
        from dlpipe.models.centernet_loss import CenterNetLoss

        return FitSettings(loss=CenterNetLoss(len(ctx.class_names)), metrics=[],
                           optimizer=self.setting(ctx, "optimizer", "adam"),
                           warmup_fraction=self.setting(ctx, "warmup_fraction", 0.0), clipnorm=self.config.clipnorm,
                           ema_momentum=self.config.ema)


def int8_training_note(run_dir: Any) -> str | None:
    """What `dlpipe export RUN --quantize int8` adds for a detector trained without the int8 phase; None otherwise
    (another pipeline, the phase ran, or no readable config)."""
    from dlpipe.errors import DlpipeError
    from dlpipe.pipelines.api import load_saved_config

    try:
        config = load_saved_config(run_dir)
    except DlpipeError:
        return None
    if config.pipeline != "detect" or config["train"].int8_epochs:
        return None
    return ("note: this detector trained without the int8 phase; `--set train.int8_epochs=4` in its `dlpipe run` "
            "trains it for int8 (fold 0: int8 1.4-2.5 mAP points closer to float; BENCHMARKS.md)")
