"""One training phase, fitted with Keras and resumable: compile, callbacks, checkpoints and history.

A phase trains for a number of epochs at one learning rate, optionally after
unfreezing the top blocks of the pretrained part. Its weights are saved when it
finishes, so a resumed run skips it; inside a phase, Keras' BackupAndRestore
continues from the last finished epoch. Nothing here knows a task: the loss,
metrics and class weights come in through `FitSettings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import TrainConfig

CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfreeze_blocks: int | None  # None: leave the pretrained part as built
    refit: bool = False  # trains on train + validation for a fixed number of epochs: no selection, no early stop
    custom: bool = False  # fitted by the task's own hook (e.g. a linear probe on cached features), not by epochs


@dataclass(frozen=True)
class FitSettings:
    """What a task decides about fitting: its loss, metrics, class weights and optimizer settings."""

    loss: Any
    metrics: list[Any]
    optimizer: str
    warmup_fraction: float
    class_weight: dict[int, float] | None = None
    clipnorm: float | None = None  # clip each gradient's norm (a detector's fine-tuning can diverge without it)
    ema_momentum: float = 0.0  # validate, select and keep the weights' moving average at this momentum (0: off)


def fit_phase(ctx: RunContext, model: Any, phase: Phase, data: tuple[Any, Any], cfg: TrainConfig,
              settings: FitSettings) -> None:
    """Fit one phase (or restore it when it finished earlier) and append its history to `ctx.history`."""
    from dlpipe.models.finetune import unfreeze_top_blocks
    from dlpipe.models.trace_once import build_before_fit
    from dlpipe.pipelines.training.checkpoints import load_checkpoint
    from dlpipe.pipelines.training.keras_fit import fit_verbosity, read_history

    train_ds, val_ds = data
    checkpoints = ctx.out_dir / CHECKPOINT_DIR
    history_file = ctx.out_dir / f"history_{phase.name}.csv"
    finished = checkpoints / f"{phase.name}.weights.h5"
    if phase.unfreeze_blocks is not None:
        tuning = ctx.fine_tuning
        unfreeze_top_blocks(model.get_layer(tuning.layer), tuning.block_pattern, phase.unfreeze_blocks, tuning.batch_norm)
    if finished.exists():
        load_checkpoint(model, finished)
        ctx.echo(f"  phase {phase.name}: finished earlier, weights restored")
    else:
        trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
        ctx.echo(f"  phase {phase.name}: {phase.epochs} epochs, lr {phase.learning_rate:g}, {trainable:,} trainable "
                 "parameters" + (" (train + validation)" if phase.refit else ""))
        steps = max(int(train_ds.cardinality()), 1)
        model.compile(optimizer=make_phase_optimizer(phase, steps, cfg, settings), loss=settings.loss,
                      metrics=list(settings.metrics), jit_compile=cfg.jit_compile)
        build_before_fit(model, train_ds)
        model.fit(train_ds, validation_data=val_ds, epochs=phase.epochs,
                  callbacks=phase_callbacks(ctx, phase, cfg, history_file, val_ds is not None,
                                            averaged=getattr(model.optimizer, "use_ema", False)),
                  class_weight=settings.class_weight, verbose=fit_verbosity(cfg.progress),
                  shuffle=False)  # the dataset reshuffles itself each epoch
        best = checkpoints / f"best_{phase.name}.weights.h5"
        if best.exists():
            load_checkpoint(model, best)
        save_weights(model, finished)
    ctx.history["phases"].append({"name": phase.name, "history": read_history(history_file)})


def make_phase_optimizer(phase: Phase, steps_per_epoch: int, cfg: TrainConfig, settings: FitSettings) -> Any:
    """The phase's optimizer: linear warm-up to its rate, then cosine decay (lr_schedule=cosine) or a constant rate."""
    import keras

    from dlpipe.pipelines.training.distribute import scale
    from dlpipe.pipelines.training.keras_fit import make_optimizer

    rate: Any = phase.learning_rate * scale(cfg)  # linear scaling: R replicas, R times the batch and the rate
    total = phase.epochs * steps_per_epoch
    warmup = int(settings.warmup_fraction * total)
    if cfg.lr_schedule == "cosine" or warmup:
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate, decay_steps=max(total - warmup, 1),
            alpha=0.0 if cfg.lr_schedule == "cosine" else 1.0,
            warmup_target=rate if warmup else None, warmup_steps=warmup,
        )
    return make_optimizer(settings.optimizer, rate, cfg.momentum, cfg.weight_decay, settings.clipnorm,
                          average_momentum(settings.ema_momentum, total))


def average_momentum(momentum: float, steps: int) -> float:
    """The weight average's momentum for a phase of `steps` steps: as asked, but averaging over at most a tenth of
    the phase (about 1 / (1 - momentum) steps), so a short phase on a small dataset is not left near its start."""
    if momentum <= 0:
        return 0.0
    return max(min(momentum, 1.0 - 10.0 / max(steps, 1)), 0.0)


def phase_callbacks(ctx: RunContext, phase: Phase, cfg: TrainConfig, history_file: Path, has_val: bool,
                    averaged: bool = False) -> list[Any]:
    """CSV history, best checkpoint, early stopping, plateau schedule, TensorBoard, the caller's, then the backup;
    with a weight average, validation and the checkpoint see the average and the backup the raw weights."""
    import keras

    from dlpipe.pipelines.training.ema import EMASwap

    from dlpipe.pipelines.training.checkpoints import backup_callback
    from dlpipe.pipelines.training.keras_fit import best_so_far, read_history

    checkpoints = ctx.out_dir / CHECKPOINT_DIR
    monitor = cfg.monitor if has_val else cfg.monitor.replace("val_", "")
    # Order matters: the epoch is logged and checkpointed before it is backed up, so a
    # kill in between repeats the epoch (the repeated log row wins) rather than losing it.
    callbacks: list[Any] = [keras.callbacks.CSVLogger(str(history_file), append=True)]
    average_in, raw_back = EMASwap().callbacks() if averaged else (None, None)  # the optimizer keeps an average
    if average_in:
        callbacks.append(average_in)
    if not phase.refit:  # a refit runs a fixed number of epochs on every example: nothing left to select on
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(checkpoints / f"best_{phase.name}.weights.h5"), monitor=monitor, save_best_only=True,
            save_weights_only=True, initial_value_threshold=best_so_far(read_history(history_file), monitor)))
        if cfg.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.early_stopping_patience))
        if cfg.lr_schedule == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, factor=0.5, patience=max(1, cfg.early_stopping_patience // 2)))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(ctx.out_dir / "logs" / phase.name)))
    before = sum(len(p["history"].get("loss", [])) for p in ctx.history.get("phases", []))
    for callback in ctx.extra_callbacks:  # run tracking numbers epochs across phases (pipelines/tracking_callback.py)
        if hasattr(callback, "start_phase"):
            callback.start_phase(phase, before)
    callbacks.extend(ctx.extra_callbacks)
    if raw_back:
        callbacks.append(raw_back)
    callbacks.append(backup_callback(checkpoints / f"backup_{phase.name}"))
    return callbacks


def chosen_epochs(ctx: RunContext, phases: list[Phase], monitor: str) -> list[int]:
    """Per phase, the epoch count model selection chose: the first epoch that reached the best monitored value."""
    from dlpipe.pipelines.training.keras_fit import maximised

    chosen = []
    histories = {p["name"]: p["history"] for p in ctx.history["phases"]}
    for phase in phases:
        values = histories.get(phase.name, {}).get(monitor, [])
        finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
        if not finite:
            chosen.append(phase.epochs)
            continue
        target = max(v for v, _ in finite) if maximised(monitor) else min(v for v, _ in finite)
        chosen.append(next(i for v, i in finite if v == target) + 1)
    return chosen


def save_weights(model: Any, path: Path) -> None:
    """Save weights atomically: a kill mid-write leaves the previous file, never a torn one."""
    from dlpipe import atomic

    with atomic.replacing_file(path) as tmp:
        model.save_weights(tmp)

