"""segment: semantic segmentation from photos in images/ and class-index mask PNGs in masks/.

The training half of the segment task (its runtime half is `dlpipe.models.tasks.segment`): a U-Net decoder on
the EfficientNet-Lite0 encoder, trained with the shared phases; `evaluate` scores IoU; `export` is shared.
"""

from dataclasses import dataclass

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.config import option
from dlpipe.pipelines.segment.evaluate import SegmentEvaluateStage
from dlpipe.pipelines.segment.load import SegmentLoadStage
from dlpipe.pipelines.segment.model import SegmentModelStage
from dlpipe.pipelines.segment.preprocess import SegmentPreprocessStage
from dlpipe.pipelines.segment.train import SegmentTrainStage
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage


@dataclass(frozen=True)
class SegmentExportConfig(ExportConfig):
    """Which artifacts to write (`dlpipe export RUN` adds more later)."""

    formats: list[str] = option(["keras", "savedmodel", "tflite"], ExportConfig.formats_help)


class SegmentExportStage(ExportStage):
    """Write each format through the segment task's exporters (the .tflite too, for MediaPipe's segmenter)."""

    config_cls = SegmentExportConfig


PIPELINE = PipelineSpec(
    name="segment",
    description="semantic segmentation from photos in images/ and class-index mask PNGs in masks/ (U-Net on "
                "EfficientNet-Lite0)",
    task="segment",
    stages=(("load", SegmentLoadStage), ("model", SegmentModelStage), ("preprocess", SegmentPreprocessStage),
            ("train", SegmentTrainStage), ("evaluate", SegmentEvaluateStage), ("export", SegmentExportStage)),
)
