"""A new trainable task is two packages (training half, runtime half) and one registration line each.

The task here, "brightness", is image regression: predict a photo's mean brightness. Both halves are written
to a temporary folder as a user's own packages; the test registers them the way `PIPELINE_PACKAGES` and
`TASK_MODULES` do (one entry each) and edits nothing in dlpipe. It then trains, evaluates and exports through
the shared training core and export stage, and `dlpipe predict` answers with the exported model.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

RUNTIME = '''
"""Runtime half: an image in, its brightness (0-1) out."""
import numpy as np

from dlpipe.models.export import register
from dlpipe.models.export.converters import write_keras
from dlpipe.models.tasks.image import ImageTask

register("brightness", "keras")(write_keras)


class BrightnessTask(ImageTask):
    name = "brightness"
    description = "image regression: mean brightness"
    exporters_module = __name__

    def describe(self, output, class_names, top_k, digits=None):
        value = float(np.asarray(output).reshape(-1)[0])
        return {"brightness": round(value, digits) if digits is not None else value}

    def answer(self, output, class_names, top_k):
        return self.describe(output, class_names, top_k)

    def score(self, labels, outputs, class_names):
        error = np.abs(np.asarray(labels, float) - np.asarray(outputs).reshape(-1))
        return {"mae": float(error.mean()), "count": int(len(error))}

    def parity(self, reference, outputs):
        if not len(reference):
            return {"max_abs_diff": None, "count": 0}
        return {"max_abs_diff": float(np.max(np.abs(np.asarray(reference) - np.asarray(outputs)))),
                "count": int(len(reference))}


TASK = BrightnessTask
'''

TRAINING = '''
"""Training half: load a CSV of path,brightness; a tiny CNN; the shared train and export stages."""
import csv
from dataclasses import dataclass
from pathlib import Path

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.config import option
from dlpipe.pipelines.stage import Examples, ModelInput, RunContext, Stage
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage
from dlpipe.pipelines.training.config import TrainConfig
from dlpipe.pipelines.training.phases import FitSettings
from dlpipe.pipelines.training.stage import TrainStage


@dataclass(frozen=True)
class LoadConfig:
    """Where the CSV is."""

    path: str | None = option(None, "CSV of path,brightness")


class LoadStage(Stage):
    """Read path,brightness rows; every fourth is validation."""

    config_cls = LoadConfig

    def run(self, ctx: RunContext) -> str:
        rows = list(csv.reader(open(self.config.path, encoding="utf-8")))
        folder = Path(self.config.path).parent
        paths, values = [str(folder / r[0]) for r in rows], [float(r[1]) for r in rows]
        ctx.class_names = ["brightness"]
        pick = lambda keep: [i for i in range(len(rows)) if (i % 4 == 0) == keep]
        ctx.train = Examples([paths[i] for i in pick(False)], targets=[values[i] for i in pick(False)])
        ctx.val = Examples([paths[i] for i in pick(True)], targets=[values[i] for i in pick(True)])
        return f"{len(rows)} photos"


@dataclass(frozen=True)
class ModelConfig:
    """The network."""

    image_size: int = option(16, "input size")


class ModelStage(Stage):
    """A tiny CNN with one linear output, and the pixels it takes."""

    config_cls = ModelConfig

    def run(self, ctx: RunContext) -> str:
        import keras

        from dlpipe.data.datasets import decoded_images
        from dlpipe.data.preprocess import ImagePreprocessing

        size = self.config.image_size
        ctx.model = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Rescaling(1 / 255),
                                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
        ctx.model_input = ModelInput(size, "stretch")
        ctx.preprocessing = ImagePreprocessing(image_size=size, resize="stretch")
        ctx.train_data = decoded_images(ctx.train.inputs, ctx.train.targets, ctx.preprocessing)
        ctx.val_data = decoded_images(ctx.val.inputs, ctx.val.targets, ctx.preprocessing)
        return "tiny regressor"


@dataclass(frozen=True)
class BrightnessTrainConfig(TrainConfig):
    """The shared training options with this task's defaults."""

    epochs: int = option(60, "epochs")
    learning_rate: float | None = option(0.05, "learning rate")
    batch_size: int = option(8, "photos per step")
    early_stopping_patience: int = option(0, "never stop early")
    tensorboard: bool = option(False, "no logs")
    progress: str = option("none", "quiet")


class BrightnessTrainStage(TrainStage):
    """The shared phases with a mean-squared-error loss."""

    config_cls = BrightnessTrainConfig

    def fit_settings(self, ctx: RunContext) -> FitSettings:
        return FitSettings(loss="mse", metrics=["mae"], optimizer="adam", warmup_fraction=0.0)


@dataclass(frozen=True)
class EvaluateConfig:
    """Nothing to set."""


class EvaluateStage(Stage):
    """Mean absolute error on the validation photos, against always predicting the training mean."""

    config_cls = EvaluateConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe.data.datasets import batched

        predicted = ctx.model.predict(batched(ctx.val_data, 8).map(lambda x, y: x), verbose=0).reshape(-1)
        truth = np.asarray(ctx.val.targets)
        ctx.metrics = {"mae": float(np.mean(np.abs(predicted - truth))),
                       "baseline_mae": float(np.mean(np.abs(np.mean(ctx.train.targets) - truth)))}
        return f"MAE {ctx.metrics['mae']:.3f}"


@dataclass(frozen=True)
class BrightnessExportConfig(ExportConfig):
    """Keras only."""

    formats: list = option(["keras"], "artifacts")


class BrightnessExportStage(ExportStage):
    """The shared export stage."""

    config_cls = BrightnessExportConfig


PIPELINE = PipelineSpec(
    name="image-brightness", description="predict a photo's brightness", task="brightness",
    stages=(("load", LoadStage), ("model", ModelStage), ("train", BrightnessTrainStage),
            ("evaluate", EvaluateStage), ("export", BrightnessExportStage)),
)
'''


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """The two packages on sys.path, each registered by one entry, as its line in dlpipe would do."""
    import importlib

    from dlpipe.models import tasks
    from dlpipe.pipelines import catalog

    for name, source in (("toy_brightness_runtime", RUNTIME), ("toy_brightness_training", TRAINING)):
        (tmp_path / "packages" / name).mkdir(parents=True)
        (tmp_path / "packages" / name / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    monkeypatch.setitem(tasks.TASKS._entries, "brightness", importlib.import_module("toy_brightness_runtime").TASK())
    monkeypatch.setattr(catalog, "PIPELINE_PACKAGES", (*catalog.PIPELINE_PACKAGES, "toy_brightness_training"))
    catalog.pipelines.cache_clear()
    yield
    catalog.pipelines.cache_clear()


def _photos(folder, count: int = 32):
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        level = float(rng.uniform(0.1, 0.9))
        pixels = np.clip(rng.normal(level * 255, 12, (20, 20, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{index}.png")
        rows.append(f"p{index}.png,{pixels.mean() / 255:.4f}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def test_a_toy_regression_task_trains_exports_and_predicts_through_the_shared_core(toy_task, tmp_path):
    from dlpipe.pipelines import api
    from dlpipe.pipelines.cli import main

    (tmp_path / "photos").mkdir()
    csv_file = _photos(tmp_path / "photos")
    out = tmp_path / "run"
    result = api.run("image-brightness", data=str(csv_file), out=out, echo=lambda _: None)
    assert result.metrics["mae"] < 0.5 * result.metrics["baseline_mae"]  # learnt, not the mean
    assert (out / "history_train.csv").is_file() and (out / "checkpoints" / "train.weights.h5").is_file()
    record = json.loads((out / "artifacts.json").read_text())
    assert record["model.keras"]["parity"]["max_abs_diff"] == pytest.approx(0.0, abs=1e-5)
    answer = CliRunner().invoke(main, ["predict", str(out), str(tmp_path / "photos" / "p0.png")],
                                catch_exceptions=False)
    assert answer.exit_code == 0, answer.output
    truth = float((tmp_path / "photos" / "labels.csv").read_text().splitlines()[0].split(",")[1])
    line = next(line for line in answer.output.splitlines() if line.startswith(str(tmp_path / "photos" / "p0.png")))
    predicted = json.loads(line.split(": ", 1)[1])["brightness"]
    assert abs(predicted - truth) < 0.1
