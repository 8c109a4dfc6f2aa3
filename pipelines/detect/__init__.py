"""detect: an object detector trained on your own boxes (COCO JSON, Pascal VOC XML or YOLO txt).

The training half of the detect task (its runtime half is `dlpipe.models.tasks.detect`): CenterNet with
TTFNet's boxes, started from coco-detector's COCO weights (models/centernet_start.py) or on ImageNet
EfficientNet-Lite0 (models/detector.py), trained with box-aware augmentation and the shared phases; `evaluate` scores COCO mAP; `export` writes the task's formats
(the .tflite runs in MediaPipe's ObjectDetector, decoding included).
"""

from dataclasses import dataclass

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.config import option
from dlpipe.pipelines.detect.crossval import DETECT_REPORT
from dlpipe.pipelines.detect.evaluate import DetectEvaluateStage, deployable_model
from dlpipe.pipelines.detect.load import DetectLoadStage
from dlpipe.pipelines.detect.model import DetectModelStage
from dlpipe.pipelines.detect.preprocess import DetectPreprocessStage
from dlpipe.pipelines.detect.recipes import RECIPES
from dlpipe.pipelines.detect.train import DetectTrainStage
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage


@dataclass(frozen=True)
class DetectExportConfig(ExportConfig):
    """Which artifacts to write (`dlpipe export RUN` adds more later)."""

    formats: list[str] = option(["keras", "savedmodel", "tflite"], ExportConfig.formats_help)


class DetectExportStage(ExportStage):
    """Write each format through the detect task's exporters: the model with its decoding."""

    config_cls = DetectExportConfig

    def exported_model(self, ctx):
        return deployable_model(ctx)


PIPELINE = PipelineSpec(
    name="detect",
    description="object detection trained on your boxes (COCO JSON, Pascal VOC or YOLO txt): CenterNet from "
                "coco-detector's COCO weights or on ImageNet EfficientNet-Lite0",
    task="detect",
    stages=(("load", DetectLoadStage), ("model", DetectModelStage), ("preprocess", DetectPreprocessStage),
            ("train", DetectTrainStage), ("evaluate", DetectEvaluateStage), ("export", DetectExportStage)),
    search_space={"train.learning_rate": ("float", 5e-4, 5e-3, True), "train.finetune_epochs": ("int", 8, 60),
                  "model.image_size": ("categorical", [224, 256, 320])},
    cv_report=DETECT_REPORT,
    recipes=RECIPES,
)
