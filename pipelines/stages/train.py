"""Stage `train`: two-phase transfer learning with checkpoints that survive a kill.

Phase `head` trains the classifier with a pretrained backbone frozen; phase
`finetune` then unfreezes the top blocks with a lower learning rate. A backbone
without pretrained weights trains whole in one phase (`train`). Every epoch is
backed up (Keras BackupAndRestore), so `dlpipe run ... --resume` continues a
killed run from its last finished epoch; a finished phase leaves its weights
behind and is skipped on resume.

Options for small data (issue 14): `learning_rate: auto` runs the learning-rate
finder first (`pipelines/lr_finder.py`); `refit` retrains on train + validation
for the epoch counts that validation chose; `label_smoothing`; `model.mode: probe`
fits a logistic-regression head on cached backbone features instead of epochs,
and `probe_baseline` fits that probe beside any fine-tuning run, so a user sees
when fine-tuning does not pay; `cv_folds` (run by `pipelines/crossval.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage, register_stage

CHECKPOINT_DIR = "checkpoints"
REFIT_AUTO_LIMIT = 2000  # refit=auto refits below this many images: where every fifth photo left out costs most


@dataclass(frozen=True)
class TrainConfig:
    """Phases, optimizer, schedule, early stopping and progress output."""

    epochs: int = option(6, "epochs of the first phase (head only when the backbone is pretrained)")
    head: Literal["epochs", "probe"] = option(
        "epochs", "how a pretrained backbone's head is first trained: epochs (train.epochs of head training on "
                  "augmented images) or probe (fit it as a logistic regression on cached features, in seconds, "
                  "then fine-tune from there: linear probing then fine-tuning, LP-FT)")
    finetune_epochs: int = option(0, "epochs of the second phase, with the top backbone blocks unfrozen")
    unfreeze_blocks: int = option(-1, "backbone blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    finetune_lr_factor: float = option(0.1, "fine-tuning learning rate = learning_rate * this")
    batch_size: int = option(32, "images per step; lower it if memory runs out")
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"] | None = option(
        None, "optimizer; default: what the model recommends (adam; adamw for minilm and mpnet)")
    learning_rate: float | Literal["auto"] | None = option(
        None, "learning rate of the first phase; auto: run the learning-rate finder first (lr_find.png; the chosen "
              "rate is written into config.yaml); default: what the model recommends (1e-3 images, 2e-3 recurrent, "
              "5e-5 minilm, 2e-5 mpnet)")
    lr_find_steps: int = option(200, "steps of the learning-rate finder's exponential sweep (learning_rate: auto, "
                                     "dlpipe lr-find)")
    lr_find_pick: Literal["min10", "steepest"] = option(
        "min10", "finder's choice: min10 (a tenth of the rate at the smoothed loss minimum) or steepest (steepest descent)")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy (0: off; 0.1 is usual)")
    refit: bool | Literal["auto"] = option(
        False, "after model selection on the validation split, retrain from the start on train + validation for the "
               "chosen epoch counts (no photo is left out); auto: refit a pretrained backbone's run on small data "
               f"(under {REFIT_AUTO_LIMIT:,} images)")
    cv_folds: int = option(0, "stratified K-fold cross-validation before the final run (OUT/folds/K/, resumable per "
                              "fold): mean, sd, per-fold and pooled accuracy in metrics.json (0: off)")
    probe_c: float = option(0.1, "linear probe: inverse L2 strength of the logistic regression (standardised features)")
    probe_baseline: bool = option(True, "with a pretrained backbone, also fit the linear probe and report its "
                                        "validation accuracy beside the run's")
    warmup_fraction: float | None = option(
        None, "fraction of the steps spent warming the learning rate up from 0 (default: 0.1 for minilm and mpnet, else 0)")
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
        require(self.learning_rate in (None, "auto") or self.learning_rate > 0, "learning_rate", "must be > 0 or auto")
        require(self.lr_find_steps >= 10, "lr_find_steps", "must be at least 10")
        require(0.0 <= self.label_smoothing < 1.0, "label_smoothing", f"must be in [0, 1). Received: {self.label_smoothing}")
        require(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds", f"must be 0 (off) or at least 2. Received: {self.cv_folds}")
        require(self.probe_c > 0, "probe_c", "must be > 0")
        require(self.warmup_fraction is None or 0 <= self.warmup_fraction < 1, "warmup_fraction", "must be in [0, 1)")
        require(self.finetune_lr_factor > 0, "finetune_lr_factor", "must be > 0")
        require(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    unfreeze_blocks: int | None  # None: leave the backbone as built
    refit: bool = False  # trains on train + validation for a fixed number of epochs: no selection, no early stop
    probe: bool = False  # the head is fitted as a logistic regression on cached features instead of epochs


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
        checkpoints = ctx.out_dir / CHECKPOINT_DIR
        checkpoints.mkdir(parents=True, exist_ok=True)
        ctx.history = {"phases": []}
        tuning = ctx.fine_tuning
        probe = None
        if tuning is not None and (tuning.probe or (cfg.probe_baseline and tuning.probe_features)):
            probe = self.fit_probe(ctx, model)
            ctx.history["probe"] = probe["report"]
            if tuning.probe:
                return self._finish_probe(ctx, model, probe, checkpoints)
        refit = self.refits(ctx)
        initial = checkpoints / "initial.weights.h5"
        if refit and not initial.exists():
            _save_weights(model, initial)
        self.resolve_learning_rate(ctx, model)
        train_ds = batched(ctx.need("train_data", "preprocess"), cfg.batch_size, True, ctx.augmenter, ctx.seed)
        val_ds = batched(ctx.val_data, cfg.batch_size) if len(ctx.val) else None
        phases = self.phases(ctx)
        for phase in phases:
            self._run_phase(ctx, model, phase, train_ds, val_ds, checkpoints)
        epochs = sum(len(p["history"].get("loss", [])) for p in ctx.history["phases"])
        summary = f"{epochs} epochs in {len(phases)} phase(s): " + ", ".join(p.name for p in phases)
        if refit:
            summary += self._refit(ctx, model, phases, checkpoints, initial)
        if probe is not None and probe["report"].get("accuracy") is not None:
            summary += f"; linear probe: validation accuracy {probe['report']['accuracy']:.3f}"
        return summary

    def refits(self, ctx: RunContext) -> bool:
        """Whether this run refits on train + validation after model selection (train.refit, auto resolved)."""
        if not len(ctx.val):
            return False
        if self.config.refit == "auto":
            return ctx.fine_tuning is not None and len(ctx.train) + len(ctx.val) < REFIT_AUTO_LIMIT
        return bool(self.config.refit)

    def _refit(self, ctx: RunContext, model: Any, phases: list[Phase], checkpoints: Any, initial: Any) -> str:
        """Keep the selected model's weights for evaluation, then train again from the start on every photo."""
        from dlpipe.data.datasets import batched

        cfg = self.config
        selected = checkpoints / "selected.weights.h5"
        if not selected.exists():
            _save_weights(model, selected)
        ctx.selected_weights = selected
        chosen = [Phase(f"refit_{p.name}", n, p.learning_rate, p.unfreeze_blocks, refit=True, probe=p.probe)
                  for p, n in zip(phases, self.chosen_epochs(ctx, phases))]
        chosen = [p for p in chosen if p.epochs > 0 or p.probe]
        model.load_weights(initial)
        if ctx.fine_tuning is not None:
            model.get_layer(ctx.fine_tuning.layer).trainable = False
        everything = ctx.train_data.concatenate(ctx.val_data)
        full_ds = batched(everything, cfg.batch_size, True, ctx.augmenter, ctx.seed)
        for phase in chosen:
            self._run_phase(ctx, model, phase, full_ds, None, checkpoints)
        ctx.history["refit"] = {"images": len(ctx.train) + len(ctx.val),
                                "epochs": {p.name.removeprefix("refit_"): p.epochs for p in chosen}}
        return "; refit on train + validation: " + ", ".join(f"{p.name} {p.epochs}" for p in chosen)

    def chosen_epochs(self, ctx: RunContext, phases: list[Phase]) -> list[int]:
        """Per phase, the epoch count model selection chose: the best epoch of the monitored metric."""
        import math

        chosen = []
        monitor = self.config.monitor
        histories = {p["name"]: p["history"] for p in ctx.history["phases"]}
        for phase in phases:
            values = histories.get(phase.name, {}).get(monitor, [])
            finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
            if not finite:
                chosen.append(phase.epochs)
                continue
            target = max(v for v, _ in finite) if "acc" in monitor else min(v for v, _ in finite)
            chosen.append(next(i for v, i in finite if v == target) + 1)  # the first epoch that reached it
        return chosen

    def fit_probe(self, ctx: RunContext, model: Any) -> dict[str, Any]:
        """Logistic regression on frozen backbone features (cached): the head and its validation accuracy."""
        import numpy as np

        from dlpipe.data.datasets import batched
        from dlpipe.models.metrics import wilson_interval
        from dlpipe.models.probe import extract_features, feature_model, fit_logistic, predict_logistic

        cfg = self.config
        extractor = feature_model(model, ctx.fine_tuning.layer)

        train_x = self.features(ctx, extractor, ctx.train.inputs)
        val_x = self.features(ctx, extractor, ctx.val.inputs) if len(ctx.val) else None
        kernel, bias = fit_logistic(train_x, ctx.train.labels, len(ctx.class_names), cfg.probe_c, ctx.seed)
        report: dict[str, Any] = {"model": "logistic regression on frozen backbone features", "c": cfg.probe_c,
                                  "features": int(train_x.shape[1]), "train_images": len(ctx.train)}
        if val_x is not None:
            predicted = np.argmax(predict_logistic(val_x, kernel, bias), axis=1)
            correct = int(np.sum(predicted == np.asarray(ctx.val.labels)))
            report.update(accuracy=correct / len(ctx.val), correct=correct, count=len(ctx.val),
                          accuracy_interval=list(wilson_interval(correct, len(ctx.val))))
        return {"kernel": kernel, "bias": bias, "train": train_x, "val": val_x, "report": report}

    def features(self, ctx: RunContext, extractor: Any, paths: list[str]) -> Any:
        """Backbone features of these images, each computed once per run (or per cross-validation, for every fold)."""
        import hashlib

        import yaml

        from dlpipe.data.datasets import batched, decoded_images
        from dlpipe.models.probe import cached_features, extract_features

        recipe = {name: dict(ctx.config.to_dict().get(name) or {}) for name in ("model", "preprocess")}
        for key in ("mode", "dropout", "l1", "l2", "hidden_units"):  # the head's settings, not the features'
            recipe["model"].pop(key, None)
        recipe["preprocess"].pop("cache", None)
        digest = hashlib.sha256(yaml.safe_dump(recipe).encode()).hexdigest()[:16]
        folder = ctx.cache_dir or (ctx.out_dir / "features")

        def compute(missing: list[str]) -> Any:
            ctx.echo(f"  backbone features of {len(missing)} images (cached in {folder})")
            images = decoded_images(missing, None, ctx.preprocessing, cache=False)
            return extract_features(extractor, images.batch(self.config.batch_size))

        return cached_features(folder / f"{digest}.npz", paths, compute)

    def _finish_probe(self, ctx: RunContext, model: Any, probe: dict[str, Any], checkpoints: Any) -> str:
        import numpy as np

        from dlpipe.models.probe import fit_logistic, set_head

        cfg = self.config
        set_head(model, probe["kernel"], probe["bias"])
        summary = f"linear probe on {probe['report']['features']} frozen features of {len(ctx.train)} images"
        if probe["val"] is not None:
            summary += f": validation accuracy {probe['report']['accuracy']:.3f}"
        if self.refits(ctx):
            selected = checkpoints / "selected.weights.h5"
            _save_weights(model, selected)
            ctx.selected_weights = selected
            kernel, bias = fit_logistic(np.concatenate([probe["train"], probe["val"]]),
                                        list(ctx.train.labels) + list(ctx.val.labels), len(ctx.class_names),
                                        cfg.probe_c, ctx.seed)
            set_head(model, kernel, bias)
            ctx.history["refit"] = {"images": len(ctx.train) + len(ctx.val), "epochs": {}}
            summary += f"; refit on train + validation ({len(ctx.train) + len(ctx.val)} images)"
        _save_weights(model, checkpoints / "probe.weights.h5")
        return summary

    def resolve_learning_rate(self, ctx: RunContext, model: Any) -> float:
        """The first phase's rate; `auto` runs the finder once (lr_find.json keeps it for a resume) and writes
        the chosen rate into the run's config.yaml, so the run can be repeated without the finder."""
        import dataclasses
        import json

        from dlpipe import atomic

        if self.config.learning_rate != "auto":
            return self.setting(ctx, "learning_rate", 1e-3)
        found = ctx.out_dir / "lr_find.json"
        if found.is_file():
            rate = float(json.loads(found.read_text(encoding="utf-8"))["chosen"])
            ctx.echo(f"  learning rate: {rate:.3g}, found earlier by the learning-rate finder")
        else:
            rate = float(self.find_learning_rate(ctx, model, ctx.out_dir)["chosen"])
        self.config = dataclasses.replace(self.config, learning_rate=rate)
        ctx.config.sections["train"] = self.config
        atomic.write_text(ctx.out_dir / "config.yaml", ctx.config.to_yaml())
        return rate

    def find_learning_rate(self, ctx: RunContext, model: Any, out_dir: Any) -> dict[str, Any]:
        """Sweep the learning rate (fastai's lr_find) on the first phase's trainable part: lr_find.png, lr_find.json.

        With a frozen pretrained backbone only the head trains in that phase, so the
        sweep runs on cached backbone features: seconds instead of a pass per step.
        """
        import numpy as np

        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.models.losses import classification_loss
        from dlpipe.pipelines.lr_finder import head_model, lr_sweep
        from dlpipe.pipelines.plots import plot_lr_find

        cfg = self.config
        optimizer = self.setting(ctx, "optimizer", "adam")
        loss = classification_loss(cfg.label_smoothing)
        if ctx.fine_tuning is not None:
            from dlpipe.models.probe import extract_features, feature_model

            extractor = feature_model(model, ctx.fine_tuning.layer)
            x = self.features(ctx, extractor, ctx.train.inputs)
            y = np.asarray(ctx.train.labels)
            rng = np.random.default_rng(ctx.seed)

            def batches() -> Any:
                while True:
                    order = rng.permutation(len(y))
                    for start in range(0, len(y), cfg.batch_size):
                        pick = order[start:start + cfg.batch_size]
                        yield x[pick], y[pick]

            target, source, what = head_model(model, ctx.fine_tuning.layer, x.shape[1]), batches(), "head, on cached features"
        else:
            data = batched(ctx.need("train_data", "preprocess"), cfg.batch_size, True, ctx.augmenter, ctx.seed)
            target, source, what = model, iter(data.repeat()), "whole model"
        ctx.echo(f"  learning-rate finder: {cfg.lr_find_steps} steps ({what})")
        result = lr_sweep(target, source, loss, optimizer, cfg.lr_find_steps, pick=cfg.lr_find_pick)
        result["trains"] = what
        atomic.write_json(out_dir / "lr_find.json", result)
        plot_lr_find(result, out_dir / "lr_find.png")
        ctx.echo(f"  learning-rate finder chose {result['chosen']:.3g} ({cfg.lr_find_pick}; steepest descent at "
                 f"{result['steepest']:.3g}, smoothed loss lowest at {result['minimum']:.3g}); plot: lr_find.png")
        return result

    def setting(self, ctx: RunContext, name: str, fallback: Any) -> Any:
        """A train option: the config's value, else the model stage's recommendation, else the fallback."""
        value = getattr(self.config, name)
        if value is None:
            value = getattr(ctx.training_defaults, name)
        return value if value is not None else fallback

    def phases(self, ctx: RunContext) -> list[Phase]:
        cfg = self.config
        rate = self.setting(ctx, "learning_rate", 1e-3)
        if rate == "auto":
            raise ValueError("resolve_learning_rate must run before phases")
        if ctx.fine_tuning is None:
            # no pretrained part to protect (random init, or a text model): train everything at once
            if cfg.finetune_epochs:
                ctx.echo("  note: train.finetune_epochs is ignored: the whole model trains from scratch in one phase")
            return [Phase("train", cfg.epochs, rate, None)]
        if cfg.head == "probe" and ctx.fine_tuning.probe_features:
            phases = [Phase("head", 0, rate, None, probe=True)]
        else:
            phases = [Phase("head", cfg.epochs, rate, None)]
        if cfg.finetune_epochs:
            phases.append(Phase("finetune", cfg.finetune_epochs, rate * cfg.finetune_lr_factor, cfg.unfreeze_blocks))
        return phases

    def _run_phase(self, ctx: RunContext, model: Any, phase: Phase, train_ds: Any, val_ds: Any, checkpoints: Any) -> None:
        from dlpipe.models.finetune import unfreeze_top_blocks
        from dlpipe.pipelines.training import fit_verbosity, read_history

        cfg = self.config
        if phase.probe:
            self._probe_phase(ctx, model, phase)
            return
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
            ctx.echo(f"  phase {phase.name}: {phase.epochs} epochs, lr {phase.learning_rate:g}, {trainable:,} trainable parameters"
                     + (" (train + validation)" if phase.refit else ""))
            steps = max(int(train_ds.cardinality()), 1)
            from dlpipe.models.losses import classification_loss

            model.compile(
                optimizer=self._optimizer(ctx, phase, steps),
                loss=classification_loss(cfg.label_smoothing),
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

    def _probe_phase(self, ctx: RunContext, model: Any, phase: Phase) -> None:
        """The head as a logistic regression on cached features of the phase's images (LP-FT's first step)."""
        import numpy as np

        from dlpipe.data.datasets import batched
        from dlpipe.models.probe import extract_features, feature_model, fit_logistic, set_head

        cfg = self.config
        extractor = feature_model(model, ctx.fine_tuning.layer)
        sets = [(ctx.train, ctx.train_data)] + ([(ctx.val, ctx.val_data)] if phase.refit else [])
        x = np.concatenate([self.features(ctx, extractor, examples.inputs) for examples, _ in sets])
        y = [label for examples, _ in sets for label in examples.labels]
        set_head(model, *fit_logistic(x, y, len(ctx.class_names), cfg.probe_c, ctx.seed))
        ctx.echo(f"  phase {phase.name}: head fitted as a logistic regression on {len(y)} images' cached features")
        ctx.history["phases"].append({"name": phase.name, "history": {}})

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
        if phase.refit:  # a fixed number of epochs on every photo: nothing left to select on
            if cfg.tensorboard:
                callbacks.append(keras.callbacks.TensorBoard(log_dir=str(ctx.out_dir / "logs" / phase.name)))
            callbacks.extend(ctx.extra_callbacks)
            callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoints / f"backup_{phase.name}")))
            return callbacks
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
