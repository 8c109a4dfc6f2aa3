"""Shared fixtures: tiny generated image folders, so tests need no network and little time."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras reads KERAS_HOME once, at import: point it at a throw-away folder before anything imports Keras,
# so cache tests never touch the user's ~/.keras.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="dlpipe-test-keras-home-")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HYMENOPTERA = SHARED_DATA / "hymenoptera" / "train"
SENTENCES = SHARED_DATA / "sentiment_sentences"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "dlpipe_asset(available, asset, how): the test needs a set-up asset "
                                       "(tests/assets.py: skipped locally, a failure under CI)")


# The slowest modules, slowest first (seconds per module summed from a full run's durations, 2026-12-05 23:02 UTC,
# the long checks left out: 78 s for the first, 16 s for the last; together 700 of the 1,025 test-seconds). With
# `--dist loadfile --no-loadscope-reorder` (setup.cfg) the two workers take whole modules in collection order: the
# long ones start first and the many short ones fill the end, where xdist's default (most tests first) left a 2-test,
# 43-second module for last. Only the order changes; a module missing here runs after these, in its usual order.
SLOWEST_FIRST = (
    "edge/test_mediapipe_exports.py", "e2e/test_detect_run.py", "models/test_text_tflite.py",
    "pipelines/test_resume.py", "models/test_onnx_export.py", "pipelines/test_unknown.py",
    "edge/test_check_device.py", "models/test_export_formats.py", "e2e/test_sentiment_run.py", "models/test_mlp.py",
    "e2e/test_benchmark_commands.py", "e2e/test_multilabel_run.py", "models/test_text_savedmodel.py",
    "pipelines/test_gan_stages.py", "edge/test_detect_mediapipe.py", "e2e/test_segment_run.py",
    "models/test_centernet_port.py", "models/test_multilabel_lse_head.py", "pipelines/test_distribute.py",
    "pipelines/test_tracking.py", "edge/test_mediapipe_multilabel.py", "pipelines/test_playground.py",
    "pipelines/test_calibration_and_card.py", "models/test_tflite_metadata.py", "pipelines/test_report_page.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """Put the slowest modules first (SLOWEST_FIRST); the sort is stable, so each module keeps its tests' order."""
    rank = {module: position for position, module in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0].removeprefix("tests/"), len(rank)))


def pytest_runtest_setup(item) -> None:
    """Check `requires(...)` marks: a missing asset skips locally and fails under CI, naming it."""
    from assets import require

    for mark in item.iter_markers("dlpipe_asset"):
        require(mark.kwargs["available"], mark.kwargs["asset"], mark.kwargs["how"])


def write_color_images(folder: Path, hue: str, count: int, seed: int, size: int = 40, fmt: str = "JPEG") -> None:
    """Noisy images dominated by one colour channel ('red' or 'blue'), varying in size and brightness."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    channel = {"red": 0, "green": 1, "blue": 2}[hue]
    for index in range(count):
        h, w = rng.integers(size - 8, size + 9, size=2)
        pixels = rng.integers(0, 110, size=(h, w, 3))
        pixels[..., channel] += rng.integers(90, 146)
        suffix = ".jpg" if fmt == "JPEG" else ".png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{hue}_{index:03d}{suffix}", fmt)


@pytest.fixture
def color_folder(tmp_path: Path) -> Path:
    """A 2-class folder: 24 'red' JPEGs and 24 'blue' PNGs."""
    root = tmp_path / "colors"
    write_color_images(root / "red", "red", 24, seed=1)
    write_color_images(root / "blue", "blue", 24, seed=2, fmt="PNG")
    return root


@pytest.fixture
def messy_folder(color_folder: Path) -> Path:
    """The colour folder plus the usual mess: a corrupt JPEG, a GIF named .jpg, an empty class, a text file."""
    from PIL import Image

    (color_folder / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    (color_folder / "red" / "notes.txt").write_text("not an image")
    gif = Image.fromarray(np.full((32, 32, 3), (220, 30, 30), np.uint8)).convert("P")
    gif.save(color_folder / "red" / "really_a_gif.jpg", "GIF")
    (color_folder / "empty_class").mkdir()
    return color_folder


# --set overrides that make an image-classify run take seconds: tiny images, a small CNN, few epochs
TINY_SETS = [
    "model.backbone=small_cnn",
    "model.weights=none",
    "model.image_size=32",
    "train.epochs=8",
    "train.batch_size=8",
    "train.learning_rate=0.001",
    "train.tensorboard=false",
    "train.progress=none",
    "train.early_stopping_patience=0",  # batch-norm statistics of a from-scratch CNN need a few epochs to settle
    "train.monitor=val_accuracy",  # early epochs can have the lowest val_loss with constant predictions
    "augment.rotation=0",
    "augment.zoom=0",
    "augment.translation=0",
    "export.parity_sample=16",  # each export is still loaded back and checked, on fewer images
    # the small_cnn recipe's half width, cosine decay and no augmentation are for Fashion-MNIST; these runs keep
    # the settings the tests were written for
    "model.width=1.0",
    "train.lr_schedule=constant",
    # no augmentation: its random flips are drawn in a parallel tf.data map, so they differ run to run and so did
    # the tiny models (five tests flaked in CI on that); the messy e2e run turns it on to keep the stage covered
    "augment.enabled=false",
    "export.formats=[keras]",  # the image default adds savedmodel and tflite-int8; the tests that want them ask
]


# --set overrides for a sentiment run of a few seconds: a tiny GRU on short sequences
TINY_TEXT_SETS = [
    "train.epochs=6", "train.batch_size=16", "train.progress=none", "train.learning_rate=0.01",
    "preprocess.sequence_length=12", "model.architecture=gru", "model.embedding_dim=16", "model.units=16",
    "export.parity_sample=16",
    "model.embeddings=none",  # these runs test the architectures; tests/models/test_pretrained_embeddings.py: minilm
]


POSITIVE_WORDS = ["great", "love", "excellent", "good", "happy", "perfect", "nice", "wonderful"]
NEGATIVE_WORDS = ["bad", "hate", "terrible", "awful", "poor", "broken", "worst", "sad"]
FILLER = ["the", "phone", "food", "it", "was", "really", "this", "place", "service", "very"]


def write_sentences(path: Path, count: int, seed: int) -> Path:
    """`text<TAB>label` lines whose label follows from positive or negative words among filler."""
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        label = index % 2
        words = list(rng.choice(FILLER, size=rng.integers(3, 7)))
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE_WORDS if label else NEGATIVE_WORDS)))
        lines.append(f"{' '.join(words).capitalize()}.\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sentences_file(tmp_path: Path) -> Path:
    return write_sentences(tmp_path / "sentences.txt", 160, seed=3)


def variable_values(model) -> int:
    """How many numbers a model's variables hold (weights and the dropout layers' seed states)."""
    return sum(int(np.prod(variable.shape)) for variable in model.variables)


def stored_weight_values(savedmodel: Path) -> int:
    """How many numbers a SavedModel's checkpoint stores: `variable_values(model)` when each is stored once."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(savedmodel / "variables" / "variables"))
    return sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
               if name != "_CHECKPOINTABLE_OBJECT_GRAPH")


def tiny_image_run(tmp_path_factory, sets: list[str]):
    """Train image-classify on a fresh blue/red folder with `sets`: (data folder, run folder, RunResult)."""
    from dlpipe.pipelines import api

    root = tmp_path_factory.mktemp("colors")
    write_color_images(root / "blue", "blue", 24, seed=2)
    write_color_images(root / "red", "red", 24, seed=1)
    out = tmp_path_factory.mktemp("run") / "out"
    result = api.run("image-classify", data=str(root), out=out, sets=sets, echo=lambda _: None)
    return root, out, result


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny trained image-classify run (blue/red), trained once per session: (data folder, run folder)."""
    # 12 epochs at 0.003, not TINY_SETS' 8 at 0.001: every serving test reads this model, and in CI runs 8 epochs
    # (and once 12 at 0.001) left it calling a third of the blue photos red; 12 at 0.003 scored 48/48 in 3 of 3
    # no augmentation: the same model every run (random flips drawn in a parallel map differ run to run, and a
    # fresh-clone CI run once got a model calling a blue photo red)
    root, out, _ = tiny_image_run(tmp_path_factory, [*TINY_SETS, "export.formats=[keras]", "train.epochs=12",
                                                     "train.learning_rate=0.003", "augment.enabled=false"])
    return root, out


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> Path:
    """A folder with model.tflite (a tiny untrained 16 px image model, built here in seconds) and its side files."""
    import keras
    import tensorflow as tf

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models import artifacts

    folder = tmp_path_factory.mktemp("tiny-tflite")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    (folder / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    artifacts.write_side_files(folder, artifacts.Bundle("image", ["blue", "red"], ImagePreprocessing(image_size=16)))
    return folder


def InterruptAfter(epoch: int):  # noqa: N802 - reads as the callback class it builds
    """Stands in for a kill: a callback raising KeyboardInterrupt at the end of epoch `epoch` (0-based). Keras is
    imported here, not when conftest loads: tests of the TensorFlow-free paths run in this process too."""
    import keras

    class _InterruptAfter(keras.callbacks.Callback):
        def on_epoch_end(self, done, logs=None):
            if done == epoch:
                raise KeyboardInterrupt

    return _InterruptAfter()
