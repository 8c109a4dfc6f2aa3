"""image-classify: transfer learning from a pretrained CNN on a folder of images, one sub-folder per class.

The training half of the image task (its runtime half is `dlpipe.models.tasks.image`): `load` indexes and
splits the folder, `model` builds backbone + head, `preprocess` fixes the pixel recipe every consumer shares,
`augment` builds the random transforms, `train` adds the linear probe and cached features to the shared
phases, `evaluate` adds test-time flips to the classifier's evaluation, `export` is shared.
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.image_classify.recipes import RECIPES
from dlpipe.pipelines.image_classify.augment import ImageAugmentStage
from dlpipe.pipelines.image_classify.evaluate import ImageEvaluateStage
from dlpipe.pipelines.image_classify.export import ImageExportStage
from dlpipe.pipelines.image_classify.load import ImageLoadStage
from dlpipe.pipelines.image_classify.model import ModelStage
from dlpipe.pipelines.image_classify.preprocess import ImagePreprocessStage
from dlpipe.pipelines.image_classify.train import ImageTrainStage

PIPELINE = PipelineSpec(
    name="image-classify",
    description="transfer learning from a pretrained CNN on a folder of images, one sub-folder per class",
    task="image",
    stages=(("load", ImageLoadStage), ("model", ModelStage), ("preprocess", ImagePreprocessStage),
            ("augment", ImageAugmentStage), ("train", ImageTrainStage), ("evaluate", ImageEvaluateStage),
            ("export", ImageExportStage)),
    search_space={
        "model.backbone": ("categorical", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]),
        "train.probe_c": ("float", 1e-3, 10.0, True),
        "train.finetune_epochs": ("int", 0, 4),
        "train.unfreeze_blocks": ("int", 1, 4),
        "train.learning_rate": ("float", 1e-4, 1e-2, True),
        "train.label_smoothing": ("float", 0.0, 0.2, False),
        "augment.strength": ("float", 0.0, 1.5, False),
    },
    recipes=RECIPES,
)
