"""Stage `train` (sentiment): the shared phases with a text classifier's defaults.

Chosen across review domains (BENCHMARKS.md): up to 20 epochs that early stopping (patience 3, on validation
accuracy) ends sooner, then 4 epochs that fine-tune the pretrained embedding rows (or encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option
from dlpipe.pipelines.training.config import ClassifierTrainConfig
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class TextTrainConfig(ClassifierTrainConfig):
    """Phases, optimizer, schedule, early stopping and progress output of a text classifier."""

    epochs: int = option(20, "epochs of the first phase (pretrained embeddings or encoder frozen, if any); early "
                             "stopping ends most runs sooner")
    finetune_epochs: int = option(4, "with pretrained embeddings or an encoder: epochs that fine-tune them after the "
                                     "frozen epochs")
    learning_rate: float | Literal["auto"] | None = option(
        None, "learning rate of the first phase; auto: run the learning-rate finder first; default: what the model "
              "recommends (2e-3 recurrent, 1e-3 transformer, 5e-5 minilm, 2e-5 mpnet)")
    warmup_fraction: float | None = option(
        None, "fraction of the steps spent warming the learning rate up from 0 (default: 0.1 for minilm and mpnet, else 0)")
    monitor: Literal["val_loss", "val_accuracy"] = option("val_accuracy", "metric for early stopping and the best checkpoint")
    tensorboard: bool = option(False, "write TensorBoard logs under logs/")


class TextTrainStage(TrainStage):
    """Fit the text classifier: whole, or the head with pretrained parts frozen and then all of it; resumable."""

    config_cls = TextTrainConfig
