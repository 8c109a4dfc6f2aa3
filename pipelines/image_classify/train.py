"""Stage `train` (image-classify): the shared phases, plus what only a frozen image backbone allows.

Its pooled features make a linear probe possible: `train.head: probe` fits the
head as a logistic regression on cached backbone features (seconds) before any
fine-tuning (LP-FT), `model.mode: probe` makes that probe the whole model, and
`probe_baseline` reports the probe beside a fine-tuning run, so a user sees when
fine-tuning does not pay. The learning-rate finder sweeps the head on those
cached features too. Features are cached per image (`OUT/features/`, shared by
every fold of a cross-validation), keyed by what produced them: the backbone and
the preprocessing spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import ClassifierTrainConfig
from dlpipe.pipelines.training.phases import CHECKPOINT_DIR, Phase, save_weights
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class ImageTrainConfig(ClassifierTrainConfig):
    """Phases, optimizer, schedule, early stopping, the linear probe, progress output.

    Defaults (issue 14, chosen by 5-fold cross-validation on the 245 ant/bee photos, BENCHMARKS.md "Image
    recipes"): a logistic-regression head on frozen features, refit on every photo. To fine-tune on top of that
    head (LP-FT), set finetune_epochs (e.g. 3) and label_smoothing=0.1.
    """

    epochs: int = option(5, "epochs of the first phase (head only when the backbone is pretrained)")
    head: Literal["epochs", "probe"] = option(
        "probe", "how a pretrained backbone's head is first trained: epochs (train.epochs of head training on "
                 "augmented images) or probe (fit it as a logistic regression on cached features, in seconds, "
                 "then fine-tune from there: linear probing then fine-tuning, LP-FT)")
    unfreeze_blocks: int = option(3, "backbone blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    learning_rate: float | Literal["auto"] | None = option(
        0.001, "learning rate of the first phase; auto: run the learning-rate finder first (lr_find.png; the chosen "
               "rate is written into config.yaml)")
    refit: bool | Literal["auto"] = option(
        "auto", "after model selection on the validation split, retrain from the start on train + validation for the "
                "chosen epoch counts (no photo is left out); auto: refit a pretrained backbone's run on small data "
                "(under 2,000 images)")
    probe_c: float = option(0.1, "linear probe: inverse L2 strength of the logistic regression (standardised features)")
    probe_baseline: bool = option(True, "with a pretrained backbone, also fit the linear probe and report its "
                                        "validation accuracy beside the run's")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.probe_c > 0, "probe_c", "must be > 0")


class ImageTrainStage(TrainStage):
    """Fit the classifier: a linear-probe or trained head on the frozen backbone, then the top blocks, resumable."""

    config_cls = ImageTrainConfig

    def before_phases(self, ctx: RunContext, model: Any) -> str | None:
        tuning = ctx.fine_tuning
        if tuning is None or not (tuning.probe or (self.config.probe_baseline and tuning.probe_features)):
            return None
        probe = self.fit_probe(ctx, model)
        ctx.history["probe"] = probe["report"]
        if not tuning.probe:
            return None
        from dlpipe.models.probe import set_head

        set_head(model, probe["kernel"], probe["bias"])
        summary = f"linear probe on {probe['report']['features']} frozen features of {len(ctx.train)} images"
        if probe["val"] is not None:
            summary += f": validation accuracy {probe['report']['accuracy']:.3f}"
        return summary + self.keep_probe_as_model(ctx, model)

    def head_phase(self, ctx: RunContext, rate: float) -> Phase:
        if self.config.head == "probe" and ctx.fine_tuning.probe_features:
            return Phase("head", 0, rate, None, custom=True)
        return super().head_phase(ctx, rate)

    def fit_custom_phase(self, ctx: RunContext, model: Any, phase: Phase) -> None:
        """The head as a logistic regression on cached features of the phase's images (LP-FT's first step)."""
        import numpy as np

        from dlpipe.models.probe import feature_model, fit_logistic, set_head

        extractor = feature_model(model, ctx.fine_tuning.layer)
        sets = [ctx.train] + ([ctx.val] if phase.refit else [])
        x = np.concatenate([self.features(ctx, extractor, examples.inputs) for examples in sets])
        y = [label for examples in sets for label in examples.labels]
        set_head(model, *fit_logistic(x, y, len(ctx.class_names), self.config.probe_c, ctx.seed))
        ctx.echo(f"  phase {phase.name}: head fitted as a logistic regression on {len(y)} images' cached features")
        ctx.history["phases"].append({"name": phase.name, "history": {}})

    def sweep_source(self, ctx: RunContext, model: Any) -> tuple[Any, Any, str]:
        """With a frozen backbone only the head trains in the first phase: sweep it on cached features (seconds)."""
        if ctx.fine_tuning is None:
            return super().sweep_source(ctx, model)
        import numpy as np

        from dlpipe.models.probe import feature_model
        from dlpipe.pipelines.training.lr_finder import head_model

        x = self.features(ctx, feature_model(model, ctx.fine_tuning.layer), ctx.train.inputs)
        y = np.asarray(ctx.train.labels)
        rng = np.random.default_rng(ctx.seed)
        batch = self.config.batch_size

        def batches() -> Any:
            while True:
                order = rng.permutation(len(y))
                for start in range(0, len(y), batch):
                    pick = order[start:start + batch]
                    yield x[pick], y[pick]

        return head_model(model, ctx.fine_tuning.layer, x.shape[1]), batches(), "head, on cached features"

    def summary_suffix(self, ctx: RunContext) -> str:
        accuracy = ctx.history.get("probe", {}).get("accuracy")
        return f"; linear probe: validation accuracy {accuracy:.3f}" if accuracy is not None else ""

    def fit_probe(self, ctx: RunContext, model: Any) -> dict[str, Any]:
        """Logistic regression on frozen backbone features (cached): the head and its validation accuracy."""
        import numpy as np

        from dlpipe.models.metrics import wilson_interval
        from dlpipe.models.probe import feature_model, fit_logistic, predict_logistic

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
        """Backbone features of these images, each computed once per run (see `cached_backbone_features`)."""
        return cached_backbone_features(ctx, extractor, paths, self.config.batch_size)

    def keep_probe_as_model(self, ctx: RunContext, model: Any) -> str:
        """model.mode=probe, after the head was fitted on the training images: keep it as the model (the selected
        weights, for evaluation) and, when the run refits, fit it again on every image; returns the summary's tail."""
        checkpoints = ctx.out_dir / CHECKPOINT_DIR
        tail = ""
        if self.refits(ctx):
            selected = checkpoints / "selected.weights.h5"
            save_weights(model, selected)
            ctx.selected_weights = selected
            self.fit_custom_phase(ctx, model, Phase("refit_head", 0, 0.0, None, refit=True, custom=True))
            ctx.history["refit"] = {"examples": len(ctx.train) + len(ctx.val), "epochs": {}}
            tail = f"; refit on train + validation ({len(ctx.train) + len(ctx.val)} images)"
        save_weights(model, checkpoints / "probe.weights.h5")
        return tail


def cached_backbone_features(ctx: RunContext, extractor: Any, paths: list[str], batch_size: int) -> Any:
    """Frozen backbone features of these images, each computed once per run (or per cross-validation, for every
    fold); the evaluate stage's unknown answer reads them too.

    The cache is keyed by what the features depend on: the backbone (`ctx.fine_tuning.source`) and the
    preprocessing spec, both products of earlier stages, never their configs.
    """
    import dataclasses
    import hashlib
    import json

    from dlpipe.data.datasets import decoded_images
    from dlpipe.models.probe import cached_features, extract_features

    recipe = {"backbone": ctx.fine_tuning.source, "preprocessing": dataclasses.asdict(ctx.preprocessing)}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = ctx.cache_dir or (ctx.out_dir / "features")

    def compute(missing: list[str]) -> Any:
        ctx.echo(f"  backbone features of {len(missing)} images (cached in {folder})")
        images = decoded_images(missing, None, ctx.preprocessing, cache=False)
        return extract_features(extractor, images.batch(batch_size))

    return cached_features(folder / f"{digest}.npz", paths, compute)
