"""distill: a small text student trained on a finished sentiment run's soft labels (`dlpipe distill`).

The sentiment pipeline with two changes: a `distill` stage after `load` asks the teacher run for
probabilities over the training texts and any unlabelled texts, and the `train` stage fits those
probabilities. Preprocessing (the student's own tokenizer), model, evaluation and export are the sentiment
stages, so the student is a normal text run: predict, evaluate, export and serve take it like any other.
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.distill.targets import TeacherTargetsStage
from dlpipe.pipelines.distill.train import DistillTrainStage
from dlpipe.pipelines.sentiment.load import TextLoadStage
from dlpipe.pipelines.sentiment.model import TextModelStage
from dlpipe.pipelines.sentiment.preprocess import TextPreprocessStage
from dlpipe.pipelines.sentiment.recipes import RECIPES
from dlpipe.pipelines.stages.evaluate import EvaluateStage
from dlpipe.pipelines.stages.export import ExportStage

PIPELINE = PipelineSpec(
    name="distill",
    description="a small text student (GRU by default) trained on a sentiment run's soft labels over the "
                "training texts and unlabelled texts (dlpipe distill TEACHER_RUN --data FILE --unlabelled FILE)",
    task="text",
    stages=(("load", TextLoadStage), ("distill", TeacherTargetsStage), ("preprocess", TextPreprocessStage),
            ("model", TextModelStage), ("train", DistillTrainStage), ("evaluate", EvaluateStage),
            ("export", ExportStage)),
    recipes=RECIPES,  # a minilm or mpnet student gets the epochs measured for them, as in `dlpipe run sentiment`
)
