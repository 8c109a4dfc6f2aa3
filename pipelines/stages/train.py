"""Stage `train`: two-phase transfer learning with checkpoints that survive a kill.

Phase `head` trains the classifier with a pretrained backbone frozen; phase
`finetune` then unfreezes the top blocks with a lower learning rate. A backbone
without pretrained weights trains whole in one phase (`train`). Every epoch is
backed up (Keras BackupAndRestore), so `dlpipe run ... --resume` continues a
killed run from its last finished epoch; a finished phase leaves its weights
behind and is skipped on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage, register_stage

CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """Phases, optimizer, schedule, early stopping and progress output."""

    epochs: int = option(6, "epochs of the first phase (head only when the backbone is pretrained)")
    finetune_epochs: int = option(0, "epochs of the second phase, with the top backbone blocks unfrozen")
    unfreeze_blocks: int = option(-1, "backbone blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    finetune_lr_factor: float = option(0.1, "fine-tuning learning rate = learning_rate * this")
    batch_size: int = option(32, "images per step; lower it if memory runs out")
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"] | None = option(
        None, "optimizer; default: what the model recommends (adam; adamw for minilm)")
    learning_rate: float | None = option(
        None, "learning rate of the first phase; default: what the model recommends (1e-3 images, 2e-3 recurrent, 5e-5 minilm)")
    warmup_fraction: float | None = option(
        None, "fraction of the steps spent warming the learning rate up from 0 (default: 0.1 for minilm, else 0)")
    momentum: float = option(0.9, "momentum for sgd and rmsprop")
    weight_decay: float = option(1e-4, "weight decay for adamw")
    lr_schedule: Literal["constant", "cosine", "plateau"] = option(
        "constant", "constant, cosine decay over each phase, or halve on plateau of the monitored metric"
    )
    early_stopping_patience: int = option(3, "stop a phase after this many epochs without improvement (0: never)")
    monitor: Literal["val_loss", "val_accuracy"] = option("val_loss", "metric for early stopping and the best checkpoint")
    class_weight: Literal["none", "balanced"] = option("none", "balanced weighs classes inversely to their size")
    progress: Literal["auto", "bar", "epochs", "none"] = option("auto", "a progress bar on a terminal, epoch lines in logs")
    tensorboard: bool = option(True, "write TensorBoard logs under logs/")

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1. Received: {self.epochs}")
        require(self.finetune_epochs >= 0, "finetune_epochs", "must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.learning_rate is None or self.learning_rate > 0, "learning_rate", "must be > 0")
        require(self.warmup_fraction is None or 0 <= self.warmup_fraction < 1, "warmup_fraction", "must be in [0, 1)")
        require(self.finetune_lr_factor > 0, "finetune_lr_factor", "must be > 0")
        require(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfreeze_blocks: int | None  # None: leave the backbone as built


@register_stage(None, "train")
class TrainStage(Stage):
    """Fit the model in one or two phases (head, then fine-tuning), resumable after a kill.

    A model whose pretrained part is frozen (`ctx.fine_tuning`) trains its head
    first, then the top blocks; any other model trains whole in one phase.
    Unset options take the model stage's advice (`ctx.training_defaults`).
    """

    config_cls = TrainConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.datasets import batched

        cfg = self.config
        model = ctx.need("model", "model")
        train_ds = batched(ctx.need("train_data", "preprocess"), cfg.batch_size, True, ctx.augmenter, ctx.seed)
        val_ds = batched(ctx.val_data, cfg.batch_size) if len(ctx.val) else None
        checkpoints = ctx.out_dir / CHECKPOINT_DIR
        checkpoints.mkdir(parents=True, exist_ok=True)
        phases = self.phases(ctx)
        ctx.history = {"phases": []}
        for phase in phases:
            self._run_phase(ctx, model, phase, train_ds, val_ds, checkpoints)
        epochs = sum(len(p["history"].get("loss", [])) for p in ctx.history["phases"])
        return f"{epochs} epochs in {len(phases)} phase(s): " + ", ".join(p.name for p in phases)

    def setting(self, ctx: RunContext, name: str, fallback: Any) -> Any:
        """A train option: the config's value, else the model stage's recommendation, else the fallback."""
        value = getattr(self.config, name)
        if value is None:
            value = getattr(ctx.training_defaults, name)
        return value if value is not None else fallback

    def phases(self, ctx: RunContext) -> list[Phase]:
        cfg = self.config
        rate = self.setting(ctx, "learning_rate", 1e-3)
        if ctx.fine_tuning is None:
            # no pretrained part to protect (random init, or a text model): train everything at once
            if cfg.finetune_epochs:
                ctx.echo("  note: train.finetune_epochs is ignored: the whole model trains from scratch in one phase")
            return [Phase("train", cfg.epochs, rate, None)]
        phases = [Phase("head", cfg.epochs, rate, None)]
        if cfg.finetune_epochs:
            phases.append(Phase("finetune", cfg.finetune_epochs, rate * cfg.finetune_lr_factor, cfg.unfreeze_blocks))
        return phases

    def _run_phase(self, ctx: RunContext, model: Any, phase: Phase, train_ds: Any, val_ds: Any, checkpoints: Any) -> None:
        from dlpipe.models.finetune import unfreeze_top_blocks
        from dlpipe.pipelines.training import fit_verbosity, read_history

        cfg = self.config
        history_file = ctx.out_dir / f"history_{phase.name}.csv"
        finished = checkpoints / f"{phase.name}.weights.h5"
        if phase.unfreeze_blocks is not None:
            tuning = ctx.fine_tuning
            unfreeze_top_blocks(model.get_layer(tuning.layer), tuning.block_pattern, phase.unfreeze_blocks)
        if finished.exists():
            model.load_weights(finished)
            ctx.echo(f"  phase {phase.name}: finished earlier, weights restored")
        else:
            trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
            ctx.echo(f"  phase {phase.name}: {phase.epochs} epochs, lr {phase.learning_rate:g}, {trainable:,} trainable parameters")
            steps = max(int(train_ds.cardinality()), 1)
            model.compile(
                optimizer=self._optimizer(ctx, phase, steps),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=phase.epochs,
                callbacks=self._callbacks(ctx, phase, history_file, checkpoints, val_ds is not None),
                class_weight=self._class_weights(ctx),
                verbose=fit_verbosity(cfg.progress),
                shuffle=False,  # the dataset reshuffles itself each epoch
            )
            best = checkpoints / f"best_{phase.name}.weights.h5"
            if best.exists():
                model.load_weights(best)
            _save_weights(model, finished)
        ctx.history["phases"].append({"name": phase.name, "history": read_history(history_file)})

    def _optimizer(self, ctx: RunContext, phase: Phase, steps_per_epoch: int) -> Any:
        import keras

        from dlpipe.pipelines.training import make_optimizer

        cfg = self.config
        rate: Any = phase.learning_rate
        total = phase.epochs * steps_per_epoch
        warmup = int(self.setting(ctx, "warmup_fraction", 0.0) * total)
        if cfg.lr_schedule == "cosine" or warmup:
            # warm up linearly to the rate, then cosine decay (lr_schedule=cosine) or hold it (alpha=1)
            rate = keras.optimizers.schedules.CosineDecay(
                0.0 if warmup else phase.learning_rate, decay_steps=max(total - warmup, 1),
                alpha=0.0 if cfg.lr_schedule == "cosine" else 1.0,
                warmup_target=phase.learning_rate if warmup else None, warmup_steps=warmup,
            )
        optimizer = self.setting(ctx, "optimizer", "adam")
        return make_optimizer(optimizer, rate, cfg.momentum, cfg.weight_decay)

    def _class_weights(self, ctx: RunContext) -> dict[int, float] | None:
        from dlpipe.pipelines.training import balanced_class_weights

        if self.config.class_weight != "balanced":
            return None
        if not ctx.train.labels:  # the labels are files (segmentation masks): Keras weighs whole examples only
            from dlpipe.errors import ConfigError

            raise ConfigError("train.class_weight", "balanced needs one class label per example; this pipeline's "
                                                    "labels are per pixel: leave it at none")
        return balanced_class_weights(ctx.train.labels, len(ctx.class_names))

    def _callbacks(self, ctx: RunContext, phase: Phase, history_file: Any, checkpoints: Any, has_val: bool) -> list[Any]:
        import keras

        from dlpipe.pipelines.training import best_so_far, read_history

        cfg = self.config
        monitor = cfg.monitor if has_val else cfg.monitor.replace("val_", "")
        # Order matters: the epoch is logged and checkpointed before it is backed up, so a
        # kill in between repeats the epoch (the repeated log row wins) rather than losing it.
        callbacks: list[Any] = [keras.callbacks.CSVLogger(str(history_file), append=True)]
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(checkpoints / f"best_{phase.name}.weights.h5"),
                monitor=monitor,
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far(read_history(history_file), monitor),
            )
        )
        if cfg.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.early_stopping_patience))
        if cfg.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(1, cfg.early_stopping_patience // 2))
            )
        if cfg.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(ctx.out_dir / "logs" / phase.name)))
        callbacks.extend(ctx.extra_callbacks)
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoints / f"backup_{phase.name}")))
        return callbacks


def _save_weights(model: Any, path: Any) -> None:
    from dlpipe import atomic

    with atomic.replacing_file(path) as tmp:
        model.save_weights(tmp)
