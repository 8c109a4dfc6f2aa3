"""sentiment: text classification over raw strings (LSTM/GRU/BiLSTM, a small transformer, MiniLM or MPNet).

The training half of the text task (its runtime half is `dlpipe.models.tasks.text`): `load` reads labelled
sentences and splits them, `preprocess` fixes the tokenisation spec, `model` builds the classifier (and
tokenises the splits with its vocabulary), `train` runs the shared phases with text defaults, `evaluate`
and `export` are the shared classifier stages.
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.sentiment.recipes import RECIPES
from dlpipe.pipelines.sentiment.load import TextLoadStage
from dlpipe.pipelines.sentiment.model import TextModelStage
from dlpipe.pipelines.sentiment.preprocess import TextPreprocessStage
from dlpipe.pipelines.sentiment.train import TextTrainStage
from dlpipe.pipelines.stages.evaluate import EvaluateStage
from dlpipe.pipelines.stages.export import ExportStage

PIPELINE = PipelineSpec(
    name="sentiment",
    description="text classification (sentiment) with LSTM/GRU/BiLSTM, a small transformer or pretrained MiniLM "
                "or MPNet, over raw strings",
    task="text",
    stages=(("load", TextLoadStage), ("preprocess", TextPreprocessStage), ("model", TextModelStage),
            ("train", TextTrainStage), ("evaluate", EvaluateStage), ("export", ExportStage)),
    search_space={
        "model.architecture": ("categorical", ["gru", "lstm", "bilstm"]),
        "model.embedding_dim": ("categorical", [64, 128]),
        "model.units": ("categorical", [32, 64, 128]),
        "model.dropout": ("float", 0.1, 0.5, False),
        "train.learning_rate": ("float", 3e-4, 1e-2, True),
        "train.label_smoothing": ("float", 0.0, 0.2, False),
    },
    recipes=RECIPES,
)
