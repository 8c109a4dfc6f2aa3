"""The options every trainable task shares: phases, optimizer, schedule, early stopping, progress.

A task subclasses `TrainConfig` to set its own defaults (redeclaring a field
with a new default) and to add options only it has (the image task's linear
probe), so `dlpipe config` of one task never shows another's options and each
default lives in exactly one dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.tracking import track_models_option, track_option, track_uri_option

REFIT_AUTO_LIMIT = 2000  # refit=auto refits below this many examples: where every fifth one left out costs most


def distribute_option() -> Any:
    """`train.distribute`, shared by the train stage and the tasks with their own (the GAN's, the points')."""
    return option("none", "mirrored: every local GPU (MirroredStrategy); multi_worker: the machines TF_CONFIG names "
                          "(MultiWorkerMirroredStrategy; or `dlpipe run --engine ray --workers N`); auto: multi_worker "
                          "with a TF_CONFIG cluster, mirrored with 2+ GPUs, else none")


def distribute_scaling_option() -> Any:
    """`train.distribute_scaling`: what `batch_size` means when several replicas train."""
    return option("none", "none: batch_size is the global batch, split over the replicas (same steps and rate as one "
                          "device); linear: batch_size per replica, the batch and learning rate multiplied by the "
                          "replica count")


@dataclass(frozen=True)
class TrainConfig:
    """Phases, optimizer, schedule, early stopping and progress output."""

    epochs: int = option(6, "epochs of the first phase (the head only when a pretrained part is frozen)")
    finetune_epochs: int = option(0, "epochs of the second phase, with the top pretrained blocks unfrozen")
    unfreeze_blocks: int = option(-1, "pretrained blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    finetune_lr_factor: float = option(0.1, "fine-tuning learning rate = learning_rate * this")
    batch_size: int = option(32, "examples per step; lower it if memory runs out")
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"] | None = option(
        None, "optimizer; default: what the model recommends (adam; adamw for minilm and mpnet)")
    learning_rate: float | Literal["auto"] | None = option(
        None, "learning rate of the first phase; auto: run the learning-rate finder first (lr_find.png; the chosen "
              "rate is written into config.yaml); default: what the model recommends")
    lr_find_steps: int = option(200, "steps of the learning-rate finder's exponential sweep (learning_rate: auto, "
                                     "dlpipe lr-find)")
    lr_find_pick: Literal["min10", "steepest"] = option(
        "min10", "finder's choice: min10 (a tenth of the rate at the smoothed loss minimum) or steepest (steepest descent)")
    refit: bool | Literal["auto"] = option(
        False, "after model selection on the validation split, retrain from the start on train + validation for the "
               "chosen epoch counts (nothing is left out); auto: refit a run with a pretrained part on small data "
               f"(under {REFIT_AUTO_LIMIT:,} examples)")
    warmup_fraction: float | None = option(
        None, "fraction of the steps spent warming the learning rate up from 0 (default: what the model recommends)")
    momentum: float = option(0.9, "momentum for sgd and rmsprop")
    weight_decay: float = option(1e-4, "weight decay for adamw")
    lr_schedule: Literal["constant", "cosine", "plateau"] = option(
        "constant", "constant, cosine decay over each phase, or halve on plateau of the monitored metric"
    )
    early_stopping_patience: int = option(3, "stop a phase after this many epochs without improvement (0: never)")
    monitor: Literal["val_loss", "val_accuracy"] = option("val_loss", "metric for early stopping and the best checkpoint")
    progress: Literal["auto", "bar", "epochs", "none"] = option("auto", "a progress bar on a terminal, epoch lines in logs")
    tensorboard: bool = option(True, "write TensorBoard logs under logs/")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = option(
        "float32", "compute dtype while training: mixed_bfloat16 (recent GPUs; measured 3x slower on an AVX512_BF16 "
                   "CPU: BENCHMARKS.md) or mixed_float16 (GPUs; loss scaling is automatic); weights, the output "
                   "layer, evaluation and every export stay float32")
    jit_compile: bool | Literal["auto"] = option(
        "auto", "compile training steps with XLA; auto: Keras' choice (XLA on a GPU, not on a CPU)")
    distribute: Literal["none", "auto", "mirrored", "multi_worker"] = distribute_option()
    distribute_scaling: Literal["none", "linear"] = distribute_scaling_option()
    track: Literal["none", "mlflow"] = track_option()
    track_uri: str | None = track_uri_option()
    track_models: bool = track_models_option()

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1. Received: {self.epochs}")
        require(self.finetune_epochs >= 0, "finetune_epochs", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.learning_rate in (None, "auto") or self.learning_rate > 0, "learning_rate", "must be > 0 or auto")
        require(self.lr_find_steps >= 10, "lr_find_steps", "must be at least 10")
        require(self.warmup_fraction is None or 0 <= self.warmup_fraction < 1, "warmup_fraction", "must be in [0, 1)")
        require(self.finetune_lr_factor > 0, "finetune_lr_factor", "must be > 0")
        require(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")


@dataclass(frozen=True)
class LabelTrainConfig(TrainConfig):
    """Training on labels (one class, or a set of labels, per example): label smoothing and cross-validation."""

    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy (0: off; 0.1 is usual)")
    cv_folds: int = option(0, "stratified K-fold cross-validation before the final run (OUT/folds/K/, resumable per "
                              "fold): mean, sd, per-fold and pooled accuracy in metrics.json (0: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0.0 <= self.label_smoothing < 1.0, "label_smoothing", f"must be in [0, 1). Received: {self.label_smoothing}")
        require(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds", f"must be 0 (off) or at least 2. Received: {self.cv_folds}")
        require(self.cv_folds == 0 or self.distribute != "multi_worker", "cv_folds",
                "runs in one process: use train.distribute none or mirrored with cross-validation")


@dataclass(frozen=True)
class ClassifierTrainConfig(LabelTrainConfig):
    """A classifier's training (one class per example): label smoothing, class weights and cross-validation."""

    class_weight: Literal["none", "balanced"] = option("none", "balanced weighs classes inversely to their size")


@dataclass(frozen=True)
class FoldOptions:
    """The fold a load stage holds out: set for each fold's run by `train.cv_folds`, rarely by hand."""

    folds: int = option(0, "hold out one of this many stratified folds instead of val_split (set by train.cv_folds "
                           "for each fold's run; 0: off)")
    fold: int = option(0, "with folds: which fold (0 .. folds-1) is the validation set")

    def __post_init__(self) -> None:
        require(self.folds == 0 or self.folds >= 2, "folds", f"must be 0 (off) or at least 2. Received: {self.folds}")
        require(0 <= self.fold < max(self.folds, 1), "fold", f"must be in 0 .. folds-1. Received: {self.fold}")
