"""Stage `train` (image-multilabel): the image task's phases with a sigmoid head and binary cross-entropy.

Its linear probe is one logistic regression per label on the cached backbone features (the image task's
feature cache), which is also the default head: seconds on a CPU, then optional fine-tuning (LP-FT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.image_classify.train import ImageTrainStage
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.config import LabelTrainConfig
from dlpipe.pipelines.training.phases import FitSettings, Phase


@dataclass(frozen=True)
class MultiLabelTrainConfig(LabelTrainConfig):
    """Phases, optimizer, schedule, early stopping, the per-label linear probe, cross-validation, progress output."""

    epochs: int = option(1, "epochs of the first phase: the head alone, on the frozen backbone (a warm-up)")
    head: Literal["epochs", "probe"] = option(
        "epochs", "how a pretrained backbone's head is first trained: epochs (train.epochs on augmented images) or "
                  "probe (one logistic regression per label on cached features, in seconds: the best head without "
                  "fine-tuning, but its confident weights derailed fine-tuning on the fashion scenes)")
    finetune_epochs: int = option(15, "epochs of fine-tuning after the head, every unfrozen block training (early "
                                      "stopping may end it sooner): what labels of small things in a scene need")
    unfreeze_blocks: int = option(-1, "backbone blocks to unfreeze for fine-tuning, counted from the top (-1: all)")
    finetune_lr_factor: float = option(0.5, "fine-tuning learning rate = learning_rate * this")
    batch_size: int = option(16, "photos per step; lower it if memory runs out")
    learning_rate: float | Literal["auto"] | None = option(0.001, "learning rate of the first phase; auto: run the "
                                                                  "learning-rate finder first")
    refit: bool | Literal["auto"] = option(
        "auto", "after choosing epochs and thresholds on the validation split, retrain on train + validation; auto: "
                "for a pretrained backbone under 2,000 images")
    probe_c: float = option(0.1, "linear probe: inverse L2 strength of each label's logistic regression")
    monitor: Literal["val_loss", "val_auc"] = option(
        "val_auc", "metric for early stopping and the best checkpoint: val_auc (the per-label ranking, what mAP "
                   "measures; the loss rises as scores grow confident while the ranking still improves) or val_loss")
    label_smoothing: float = option(0.0, "label smoothing of the binary cross-entropy (0: off)")
    box_supervision: float = option(
        0.0, "with a COCO input and the lse head: weight of a second loss that teaches each label's per-location "
             "logits where its boxes are (the fraction of each cell they cover), beside the photo-level loss; "
             "0: labels only. A CSV has no boxes")
    cv_folds: int = option(0, "K-fold cross-validation before the final run (OUT/folds/K/, resumable per fold): "
                              "mAP and micro/macro F1 of the pooled out-of-fold predictions, with intervals (0: off)")
    clipnorm: float | None = option(None, "clip each gradient's norm to this (none: off)")
    ema: float = option(0.0, "keep a moving average of the weights at this momentum per step and validate, select "
                             "and ship it (0: off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.probe_c > 0, "probe_c", "must be > 0")
        require(self.box_supervision >= 0, "box_supervision", f"must be >= 0. Received: {self.box_supervision}")
        require(0.0 <= self.ema < 1.0, "ema", f"must be in [0, 1). Received: {self.ema}")


class MultiLabelTrainStage(ImageTrainStage):
    """Fit the multi-label head (per-label probe or epochs) on the frozen backbone, then the top blocks; resumable."""

    config_cls = MultiLabelTrainConfig
    _grid: int | None = None  # side of the lse head's location grid while box supervision runs
    _heatmap: bool = False  # the heat-map head: batches carry CenterNet targets

    def fit_settings(self, ctx: RunContext) -> FitSettings:
        import keras

        return FitSettings(loss=keras.losses.BinaryCrossentropy(label_smoothing=self.config.label_smoothing),
                           metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                                    keras.metrics.AUC(multi_label=True, name="auc")],
                           optimizer=self.setting(ctx, "optimizer", "adam"),
                           warmup_fraction=self.setting(ctx, "warmup_fraction", 0.0), clipnorm=self.config.clipnorm,
                           ema_momentum=self.config.ema)

    def fitted_model(self, ctx: RunContext, model: Any) -> Any:
        """The heat-map head's detector with CenterNet's loss; with box supervision, the model wrapped with its
        per-location loss (same weights); else the model."""
        from dlpipe.models.location_supervision import location_grid, supervised_model

        self._grid = None
        self._heatmap = ctx.training_network is not None
        if self._heatmap:
            from dlpipe.models.tasks.multilabel.heatmap_head import heatmap_supervised_model

            boxes = sum(len(photo) for photo in ctx.train.objects)
            ctx.echo(f"  heat-map head: the detector learns CenterNet's heat map and boxes from {boxes} training "
                     "boxes, beside the labels")
            return heatmap_supervised_model(ctx.training_network, model)
        if not self.config.box_supervision:
            return model
        reason = self.box_supervision_off(ctx, model)
        if reason is not None:
            ctx.echo(f"  box supervision: off ({reason})")
            return model
        self._grid = location_grid(model)
        boxes = sum(len(photo) for photo in ctx.train.objects)
        ctx.echo(f"  box supervision: each label's {self._grid}x{self._grid} location logits learn from {boxes} "
                 f"training boxes (weight {self.config.box_supervision:g})")
        return supervised_model(model, self.config.box_supervision)

    def box_supervision_off(self, ctx: RunContext, model: Any) -> str | None:
        """Why the box supervision asked for cannot run, or None when it can."""
        from dlpipe.models.location_supervision import has_location_logits

        if not has_location_logits(model):
            return "it needs the lse head: model.pooling=lse"
        if any(len(examples.objects) != len(examples) for examples in (ctx.train, ctx.val)):
            return "it needs boxes: give a COCO annotations JSON, not a CSV"
        if ctx.preprocessing.resize != "stretch":
            return "it needs preprocess.resize=stretch, where a box's place in the photo is its place in the input"
        return None

    def refits(self, ctx: RunContext) -> bool:
        """The heat-map head keeps the epoch chosen on validation, as the detect task does (auto: no refit)."""
        if ctx.training_network is None:
            return super().refits(ctx)
        if self.config.refit is True:
            from dlpipe.errors import ConfigError

            raise ConfigError("train.refit", "the heat-map head (model.backbone=centernet_coco) does not refit; "
                                             "set train.refit=false or auto")
        return False

    def training_data(self, ctx: RunContext, refit: bool = False) -> Any:
        splits = [ctx.train] + ([ctx.val] if refit else [])
        if self._heatmap:
            return self.batches_with_targets(ctx, splits, training=True)
        if self._grid is None:
            return super().training_data(ctx, refit)
        return self.batches_with_masks(ctx, splits, training=True)

    def validation_data(self, ctx: RunContext) -> Any:
        if self._heatmap and len(ctx.val):
            return self.batches_with_targets(ctx, [ctx.val], training=False)
        if self._grid is None or not len(ctx.val):
            return super().validation_data(ctx)
        return self.batches_with_masks(ctx, [ctx.val], training=False)

    def sweep_source(self, ctx: RunContext, model: Any) -> tuple[Any, Any, str]:
        """The heat-map head's learning-rate finder trains the whole detector on its targets (no cached features)."""
        if not self._heatmap:
            return super().sweep_source(ctx, model)
        return model, iter(self.training_data(ctx).repeat()), "whole detector"

    def batches_with_targets(self, ctx: RunContext, splits: list[Any], training: bool) -> Any:
        """Batches of ((photos, CenterNet targets), labels) of these splits (train, then validation); training
        photos get the detect task's box-aware augmentation."""
        from dlpipe.pipelines.image_multilabel.heatmap_batches import heatmap_batches
        from dlpipe.pipelines.training.distribute import scale, sharded

        decoded = ctx.train_data if splits[0] is ctx.train else ctx.val_data
        if len(splits) == 2:
            decoded = decoded.concatenate(ctx.val_data)
        regions = [photo for split in splits for photo in split.objects]
        return sharded(heatmap_batches(decoded, regions, ctx.class_names, ctx.preprocessing.image_size,
                                       self.config.batch_size * scale(self.config), training, ctx.seed))

    def batches_with_masks(self, ctx: RunContext, splits: list[Any], training: bool) -> Any:
        """Batches of ((photos, per-location targets), labels) of these splits (train, then validation); the
        targets follow the training branch's augmentation."""
        from dlpipe.data.datasets import batched_with_masks
        from dlpipe.data.location_targets import with_region_masks
        from dlpipe.pipelines.training.distribute import scale, sharded

        decoded = ctx.train_data if splits[0] is ctx.train else ctx.val_data
        if len(splits) == 2:
            decoded = decoded.concatenate(ctx.val_data)
        regions = [photo for split in splits for photo in split.objects]
        masked = with_region_masks(decoded, regions, ctx.class_names, ctx.preprocessing.image_size)
        return sharded(batched_with_masks(masked, self.config.batch_size * scale(self.config), self._grid, training,
                                          ctx.augmenter if training else None, ctx.seed))

    def before_phases(self, ctx: RunContext, model: Any) -> str | None:
        """model.mode=probe: the per-label probe is the model (refit on every image when the run refits)."""
        if ctx.fine_tuning is None or not ctx.fine_tuning.probe:
            return None
        self.fit_custom_phase(ctx, model, Phase("head", 0, 0.0, None, custom=True))
        return (f"per-label linear probe on frozen features of {len(ctx.train)} images"
                + self.keep_probe_as_model(ctx, model))

    def fit_custom_phase(self, ctx: RunContext, model: Any, phase: Phase) -> None:
        """The head as one logistic regression per label on cached features of the phase's images."""
        import numpy as np

        from dlpipe.models.probe import feature_model, fit_logistic_per_label, set_head

        extractor = feature_model(model, ctx.fine_tuning.layer)
        sets = [ctx.train] + ([ctx.val] if phase.refit else [])
        x = np.concatenate([self.features(ctx, extractor, examples.inputs) for examples in sets])
        y = np.asarray([label for examples in sets for label in examples.labels], np.int64)
        set_head(model, *fit_logistic_per_label(x, y, self.config.probe_c, ctx.seed))
        ctx.echo(f"  phase {phase.name}: head fitted as {y.shape[1]} logistic regressions on {len(y)} images' "
                 "cached features")
        ctx.history["phases"].append({"name": phase.name, "history": {}})

    def summary_suffix(self, ctx: RunContext) -> str:
        return ""
