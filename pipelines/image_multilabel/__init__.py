"""image-multilabel: any set of labels per photo, from a CSV of path,labels or a COCO annotations JSON.

The training half of the multi-label task (its runtime half is `dlpipe.models.tasks.multilabel`): `load` reads
photos and label sets and splits them, `model` is the image classifier with one sigmoid per label, `preprocess`
the image task's keeping the whole photo, `augment` the image task's, `train` fits the head (a logistic regression per label on cached features,
or epochs) and fine-tunes, `evaluate` chooses each label's threshold on validation predictions and folds it into
the model, `export` is shared. `train.cv_folds` pools out-of-fold scores (`crossval`).
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.image_classify.augment import ImageAugmentStage
from dlpipe.pipelines.image_multilabel.crossval import MULTILABEL_REPORT
from dlpipe.pipelines.image_multilabel.evaluate import MultiLabelEvaluateStage
from dlpipe.pipelines.image_multilabel.load import MultiLabelLoadStage
from dlpipe.pipelines.image_multilabel.model import MultiLabelModelStage, MultiLabelPreprocessStage
from dlpipe.pipelines.image_multilabel.recipes import RECIPES
from dlpipe.pipelines.image_multilabel.train import MultiLabelTrainStage
from dlpipe.pipelines.stages.export import ExportStage

PIPELINE = PipelineSpec(
    name="image-multilabel",
    description="multi-label image classification (any set of labels per photo) from a CSV of path,labels or a COCO "
                "annotations JSON, on a pretrained CNN",
    task="multilabel",
    stages=(("load", MultiLabelLoadStage), ("model", MultiLabelModelStage), ("preprocess", MultiLabelPreprocessStage),
            ("augment", ImageAugmentStage), ("train", MultiLabelTrainStage), ("evaluate", MultiLabelEvaluateStage),
            ("export", ExportStage)),
    cv_report=MULTILABEL_REPORT,
    recipes=RECIPES,
    search_space={
        "train.finetune_epochs": ("int", 0, 20),
        "train.learning_rate": ("float", 1e-4, 1e-2, True),
        "train.probe_c": ("float", 1e-3, 10.0, True),
        "augment.strength": ("float", 0.0, 1.5, False),
    },
)
