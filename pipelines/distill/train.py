"""Stage `train` (distill pipeline): the sentiment train stage fitted to soft targets.

The training batches carry the distill stage's targets (probabilities) instead of label indices, so the loss
is categorical cross-entropy on probabilities; validation batches carry one-hot labels, so `val_accuracy`
(early stopping, the best checkpoint) is plain accuracy on labelled texts. The validation split never fits:
no refit on train + validation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dlpipe.pipelines.sentiment.train import TextTrainStage
from dlpipe.pipelines.stage import RunContext
from dlpipe.pipelines.training.phases import FitSettings


class DistillTrainStage(TextTrainStage):
    """Fit the student on the teacher's soft targets (distill_targets.npz in the run folder)."""

    def run(self, ctx: RunContext) -> str:
        self._load_targets(ctx)
        return super().run(ctx) + f"; student fitted to the teacher's soft targets on {len(self._targets)} texts"

    def find_learning_rate(self, ctx: RunContext, model: Any, out_dir: Any) -> dict[str, Any]:
        self._load_targets(ctx)  # `dlpipe lr-find distill` calls this without `run`
        return super().find_learning_rate(ctx, model, out_dir)

    def _load_targets(self, ctx: RunContext) -> None:
        import numpy as np

        from dlpipe.errors import DlpipeError
        from dlpipe.pipelines.distill.targets import TARGETS_FILE

        path = ctx.out_dir / TARGETS_FILE
        if not path.is_file():
            raise DlpipeError(f"{path}: no soft targets; the 'distill' stage writes them, keep it before 'train'")
        with np.load(path) as saved:
            self._targets = saved["targets"]
        if len(self._targets) != len(ctx.train):
            raise DlpipeError(f"{path}: {len(self._targets)} targets for {len(ctx.train)} training texts; run the "
                              "'distill' stage again (dlpipe distill ... --overwrite)")
        self._classes = len(ctx.class_names)

    def refits(self, ctx: RunContext) -> bool:
        return False  # validation texts stay held out: the student never fits them

    def fit_settings(self, ctx: RunContext) -> FitSettings:
        import keras

        settings = super().fit_settings(ctx)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing)
        return dataclasses.replace(settings, loss=loss, class_weight=None)

    def train_batches(self, ctx: RunContext, dataset: Any) -> Any:
        import tensorflow as tf

        def with_target(example: Any, target: Any) -> tuple[Any, Any]:  # (inputs, label), soft target
            return example[0], target

        soft = tf.data.Dataset.from_tensor_slices(self._targets)
        return super().train_batches(ctx, tf.data.Dataset.zip((dataset, soft)).map(with_target))

    def eval_batches(self, dataset: Any) -> Any:
        import tensorflow as tf

        classes = self._classes

        def one_hot(inputs: Any, label: Any) -> tuple[Any, Any]:
            return inputs, tf.one_hot(label, classes)

        return super().eval_batches(dataset.map(one_hot))
