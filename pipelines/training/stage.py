"""Stage `train`, shared by every trainable task: phases, refit, learning-rate finder, resume.

A model whose pretrained part is frozen (`ctx.fine_tuning`) trains its head
first, then the top blocks (`finetune_epochs`); any other model trains whole in
one phase (`train`). Every epoch is backed up, so `dlpipe run ... --resume`
continues a killed run from its last finished epoch; a finished phase leaves its
weights behind and is skipped on resume. `refit` retrains on train + validation
for the epoch counts that validation chose.

A task changes what it must through small hooks: `fit_settings` (loss, metrics,
class weights), `fitted_model`, `training_data` and `validation_data` (a training-time
wrapper with its own targets), `head_phase` and `fit_custom_phase` (e.g. the image task's
linear-probe head), `before_phases` (work that can end training early) and
`sweep_source` (what the learning-rate finder trains).
"""

from __future__ import annotations

from typing import Any

from dlpipe.pipelines.stage import RunContext, Stage
from dlpipe.pipelines.training.checkpoints import load_checkpoint
from dlpipe.pipelines.training.config import REFIT_AUTO_LIMIT, TrainConfig
from dlpipe.pipelines.training.phases import (
    CHECKPOINT_DIR, FitSettings, Phase, chosen_epochs, fit_phase, save_weights,
)

__all__ = ["CHECKPOINT_DIR", "TrainStage"]


class TrainStage(Stage):
    """Fit the model in one or two phases (head, then fine-tuning), resumable after a kill.

    Unset options take the model stage's advice (`ctx.training_defaults`).
    """

    config_cls = TrainConfig

    def run(self, ctx: RunContext) -> str:
        model = ctx.need("model", "model")
        (ctx.out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        ctx.history = {"phases": []}
        finished = self.before_phases(ctx, model)
        if finished is not None:
            return finished
        model = self.fitted_model(ctx, model)
        refit = self.refits(ctx)
        initial = ctx.out_dir / CHECKPOINT_DIR / "initial.weights.h5"
        if refit and not initial.exists():
            save_weights(model, initial)
        rate = self.resolve_learning_rate(ctx, model)
        data = (self.training_data(ctx), self.validation_data(ctx))
        phases = self.phases(ctx, rate)
        for phase in phases:
            self.run_phase(ctx, model, phase, data)
        epochs = sum(len(p["history"].get("loss", [])) for p in ctx.history["phases"])
        summary = f"{epochs} epochs in {len(phases)} phase(s): " + ", ".join(p.name for p in phases)
        if refit:
            summary += self.refit(ctx, model, phases, initial)
        return summary + self.summary_suffix(ctx)

    # --- hooks a task may override -------------------------------------------------------------
    def fit_settings(self, ctx: RunContext) -> FitSettings:
        """Loss, metrics and class weights of a classifier (sparse categorical cross-entropy, accuracy)."""
        from dlpipe.models.losses import classification_loss

        return FitSettings(loss=classification_loss(getattr(self.config, "label_smoothing", 0.0)),
                           metrics=["accuracy"], optimizer=self.setting(ctx, "optimizer", "adam"),
                           warmup_fraction=self.setting(ctx, "warmup_fraction", 0.0),
                           class_weight=self.class_weights(ctx))

    def class_weights(self, ctx: RunContext) -> dict[int, float] | None:
        """Balanced class weights when the config asks for them (tasks with one label per example)."""
        from dlpipe.pipelines.training.keras_fit import balanced_class_weights

        if getattr(self.config, "class_weight", "none") != "balanced":
            return None
        return balanced_class_weights(ctx.train.labels, len(ctx.class_names))

    def before_phases(self, ctx: RunContext, model: Any) -> str | None:
        """Work before the phases; a summary ends training there (e.g. a probe-only model). Nothing by default."""
        return None

    def fitted_model(self, ctx: RunContext, model: Any) -> Any:
        """The model the phases fit: the task's own, or a training-time wrapper sharing its weights (e.g. with an
        extra loss and its targets as a second input). The task's own by default."""
        return model

    def training_data(self, ctx: RunContext, refit: bool = False) -> Any:
        """Batches the phases train on: the training split, or train + validation for the refit."""
        data = ctx.need("train_data", "preprocess")
        return self.train_batches(ctx, data.concatenate(ctx.val_data) if refit else data)

    def validation_data(self, ctx: RunContext) -> Any:
        """Batches scored after each epoch (None without a validation split)."""
        return self.eval_batches(ctx.val_data) if len(ctx.val) else None

    def head_phase(self, ctx: RunContext, rate: float) -> Phase:
        """The first phase when a pretrained part is frozen: the head, for `epochs`."""
        return Phase("head", self.config.epochs, rate, None)

    def fit_custom_phase(self, ctx: RunContext, model: Any, phase: Phase) -> None:
        """Fit a phase marked `custom` (a task that plans one must override this)."""
        raise NotImplementedError(f"{type(self).__name__} plans custom phase {phase.name} but cannot fit it")

    def sweep_source(self, ctx: RunContext, model: Any) -> tuple[Any, Any, str]:
        """What the learning-rate finder trains: (model, endless batches, description). The whole model by default."""
        data = self.train_batches(ctx, ctx.need("train_data", "preprocess"))
        return model, iter(data.repeat()), "whole model"

    def summary_suffix(self, ctx: RunContext) -> str:
        """Extra words for the stage's summary line (none by default)."""
        return ""

    # --- the shared recipe ---------------------------------------------------------------------
    def train_batches(self, ctx: RunContext, dataset: Any) -> Any:
        from dlpipe.data.datasets import batched
        from dlpipe.pipelines.training.distribute import scale, sharded

        return sharded(batched(dataset, self.config.batch_size * scale(self.config), True, ctx.augmenter, ctx.seed))

    def eval_batches(self, dataset: Any) -> Any:
        from dlpipe.data.datasets import batched
        from dlpipe.pipelines.training.distribute import scale, sharded

        return sharded(batched(dataset, self.config.batch_size * scale(self.config)))

    def setting(self, ctx: RunContext, name: str, fallback: Any) -> Any:
        """A train option: the config's value, else the model stage's recommendation, else the fallback."""
        value = getattr(self.config, name)
        if value is None:
            value = getattr(ctx.training_defaults, name)
        return value if value is not None else fallback

    def refits(self, ctx: RunContext) -> bool:
        """Whether this run refits on train + validation after model selection (train.refit, auto resolved)."""
        if not len(ctx.val):
            return False
        if self.config.refit == "auto":
            return ctx.fine_tuning is not None and len(ctx.train) + len(ctx.val) < REFIT_AUTO_LIMIT
        return bool(self.config.refit)

    def phases(self, ctx: RunContext, rate: float) -> list[Phase]:
        cfg = self.config
        if ctx.fine_tuning is None:
            # no pretrained part to protect (random init, or a text model): train everything at once
            if cfg.finetune_epochs:
                ctx.echo("  note: train.finetune_epochs is ignored: nothing is frozen first, so the whole model trains in one phase")
            return [Phase("train", cfg.epochs, rate, None)]
        phases = [self.head_phase(ctx, rate)]
        if cfg.finetune_epochs:
            phases.append(Phase("finetune", cfg.finetune_epochs, rate * cfg.finetune_lr_factor, cfg.unfreeze_blocks))
        return phases

    def run_phase(self, ctx: RunContext, model: Any, phase: Phase, data: tuple[Any, Any]) -> None:
        if phase.custom:
            self.fit_custom_phase(ctx, model, phase)
        else:
            fit_phase(ctx, model, phase, data, self.config, self.fit_settings(ctx))

    def refit(self, ctx: RunContext, model: Any, phases: list[Phase], initial: Any) -> str:
        """Keep the selected model's weights for evaluation, then train again from the start on every example."""
        selected = ctx.out_dir / CHECKPOINT_DIR / "selected.weights.h5"
        if not selected.exists():
            save_weights(model, selected)
        ctx.selected_weights = selected
        chosen = [Phase(f"refit_{p.name}", n, p.learning_rate, p.unfreeze_blocks, refit=True, custom=p.custom)
                  for p, n in zip(phases, chosen_epochs(ctx, phases, self.config.monitor))]
        chosen = [p for p in chosen if p.epochs > 0 or p.custom]
        load_checkpoint(model, initial)
        if ctx.fine_tuning is not None:
            model.get_layer(ctx.fine_tuning.layer).trainable = False
        everything = self.training_data(ctx, refit=True)
        for phase in chosen:
            self.run_phase(ctx, model, phase, (everything, None))
        ctx.history["refit"] = {"examples": len(ctx.train) + len(ctx.val),
                                "epochs": {p.name.removeprefix("refit_"): p.epochs for p in chosen}}
        return "; refit on train + validation: " + ", ".join(f"{p.name} {p.epochs}" for p in chosen)

    def resolve_learning_rate(self, ctx: RunContext, model: Any) -> float:
        """The first phase's rate; `auto` runs the finder once (lr_find.json keeps it for a resume) and records the
        chosen rate in the run's config.yaml, so the run can be repeated without the finder."""
        import json

        if self.config.learning_rate != "auto":
            return self.setting(ctx, "learning_rate", 1e-3)
        found = ctx.out_dir / "lr_find.json"
        if found.is_file():
            rate = float(json.loads(found.read_text(encoding="utf-8"))["chosen"])
            ctx.echo(f"  learning rate: {rate:.3g}, found earlier by the learning-rate finder")
        else:
            rate = float(self.find_learning_rate(ctx, model, ctx.out_dir)["chosen"])
        ctx.record_choice("train", learning_rate=rate)
        return rate

    def find_learning_rate(self, ctx: RunContext, model: Any, out_dir: Any) -> dict[str, Any]:
        """Sweep the learning rate (fastai's lr_find) on the first phase's trainable part: lr_find.png, lr_find.json."""
        from dlpipe import atomic
        from dlpipe.pipelines.plots import plot_lr_find
        from dlpipe.pipelines.training.lr_finder import lr_sweep

        cfg = self.config
        target, source, what = self.sweep_source(ctx, model)
        ctx.echo(f"  learning-rate finder: {cfg.lr_find_steps} steps ({what})")
        result = lr_sweep(target, source, self.fit_settings(ctx).loss, self.setting(ctx, "optimizer", "adam"),
                          cfg.lr_find_steps, pick=cfg.lr_find_pick)
        result["trains"] = what
        atomic.write_json(out_dir / "lr_find.json", result)
        plot_lr_find(result, out_dir / "lr_find.png")
        ctx.echo(f"  learning-rate finder chose {result['chosen']:.3g} ({cfg.lr_find_pick}; steepest descent at "
                 f"{result['steepest']:.3g}, smoothed loss lowest at {result['minimum']:.3g}); plot: lr_find.png")
        return result
