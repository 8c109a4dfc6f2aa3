"""The pipelines dlpipe can run, each an ordered list of stages with an embedded default config.

Importing this module does not import TensorFlow, so listing pipelines and
printing help stay instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from dlpipe.pipelines.stage import Stage
from dlpipe.pipelines.stages.augment_images import ImageAugmentStage
from dlpipe.pipelines.stages.build_model import ModelStage
from dlpipe.pipelines.stages.evaluate import EvaluateStage
from dlpipe.pipelines.stages.export import ExportStage
from dlpipe.pipelines.stages.build_text_model import TextModelStage
from dlpipe.pipelines.stages.load_images import ImageLoadStage
from dlpipe.pipelines.stages.load_text import TextLoadStage
from dlpipe.pipelines.stages.preprocess_images import ImagePreprocessStage
from dlpipe.pipelines.stages.preprocess_text import TextPreprocessStage
from dlpipe.pipelines.stages.train import TrainStage
from dlpipe.registry import Registry


@dataclass(frozen=True)
class PipelineSpec:
    """A named pipeline: its stages in order and its embedded default config file."""

    name: str
    description: str
    stages: tuple[type[Stage], ...]
    default_config: str

    def stage_configs(self) -> dict[str, type]:
        return {stage.name: stage.config_cls for stage in self.stages}

    def stage_class(self, name: str) -> type[Stage]:
        return next(stage for stage in self.stages if stage.name == name)

    def default_config_text(self) -> str:
        return resources.files("dlpipe.pipelines").joinpath("defaults", self.default_config).read_text(encoding="utf-8")


PIPELINES: Registry[PipelineSpec] = Registry("pipeline")

PIPELINES.add(
    "image-classify",
    PipelineSpec(
        name="image-classify",
        description="transfer learning from a pretrained CNN on a folder of images, one sub-folder per class",
        stages=(ImageLoadStage, ImagePreprocessStage, ImageAugmentStage, ModelStage, TrainStage, EvaluateStage, ExportStage),
        default_config="image-classify.yaml",
    ),
)

PIPELINES.add(
    "sentiment",
    PipelineSpec(
        name="sentiment",
        description="text classification (sentiment) with LSTM/GRU/BiLSTM or a small transformer, over raw strings",
        stages=(TextLoadStage, TextPreprocessStage, TextModelStage, TrainStage, EvaluateStage, ExportStage),
        default_config="sentiment.yaml",
    ),
)
