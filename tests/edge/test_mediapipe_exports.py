"""Files that `dlpipe run` / `dlpipe export` write run unchanged in the real MediaPipe Tasks, with label names.

A short EfficientNet-Lite0 run (96 px, one head epoch) on the shared hymenoptera photos and a small
GRU sentiment run on the amazon sentences; MediaPipe runs in .venv-mediapipe (edge/mediapipe_env.py).
Every comparison is against `dlpipe predict` on the same .tflite, copied alone into an empty folder
(so dlpipe reads labels, preprocessing and vocabulary from the file itself).

Images: MediaPipe's ImageClassifier stretches the whole photo to the input size by bilinear sampling (no
antialiasing, no centre crop). The image run is trained with `preprocess.resize=stretch` and
`preprocess.sampling=mediapipe`, the resizing that matches it, so MediaPipe must agree with `dlpipe predict` on the
raw photo files; it must also agree on each photo as dlpipe prepares it (saved as PNG at the input size, which
MediaPipe leaves as it is).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from assets import require
from conftest import HYMENOPTERA, SENTENCES
from dlpipe.models import tflite_metadata as md
from dlpipe.pipelines.cli import main
from edge.mediapipe_env import require_mediapipe, run_mediapipe

IMAGE_SETS = ["model.backbone=efficientnet_lite0", "model.image_size=96", "train.epochs=3", "train.finetune_epochs=0", "train.tensorboard=false",
              "train.progress=none", "evaluate.plots=false", "augment.enabled=false",
              "preprocess.resize=stretch", "preprocess.sampling=mediapipe", "export.formats=[keras,tflite,tflite-int8]"]
TEXT_SETS = ["preprocess.tokenizer=words", "model.architecture=gru", "model.embedding_dim=32", "model.units=32", "train.epochs=4",
             "train.progress=none", "train.learning_rate=0.005", "preprocess.sequence_length=32",
             "export.formats=[keras,tflite,tflite-dynamic]"]
PHOTO_STEP = 6  # every 6th of the 245 photos (41): the suite's subset; bench/edge_runtimes.py uses all


def photos() -> list[Path]:
    found = sorted(p for p in HYMENOPTERA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(found) >= 200, f"expected the 245 hymenoptera photos under {HYMENOPTERA}, found {len(found)}"
    return found[::PHOTO_STEP]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    from dlpipe.pipelines import api

    require_mediapipe()
    photos()
    out = tmp_path_factory.mktemp("edge-image") / "run"
    api.run("image-classify", data=str(HYMENOPTERA), out=out, sets=IMAGE_SETS, echo=lambda _: None)
    return out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    from dlpipe.pipelines import api

    require_mediapipe()
    out = tmp_path_factory.mktemp("edge-text") / "run"
    api.run("sentiment", data=str(SENTENCES / "amazon_cells_labelled.txt"), out=out, sets=TEXT_SETS,
            echo=lambda _: None)
    return out


@pytest.fixture(scope="module")
def wordpiece_text_run(tmp_path_factory) -> Path:
    """The same GRU on MiniLM's WordPiece pieces (pruned to 4,000): its .tflite carries BertTokenizer metadata."""
    from dlpipe.pipelines import api

    require_mediapipe()
    out = tmp_path_factory.mktemp("edge-wordpiece") / "run"
    api.run("sentiment", data=str(SENTENCES / "amazon_cells_labelled.txt"), out=out,
            sets=[*TEXT_SETS, "preprocess.tokenizer=wordpiece", "preprocess.max_tokens=4000"], echo=lambda _: None)
    return out


@pytest.fixture(scope="module")
def mpnet_text_run(tmp_path_factory) -> Path:
    """A small random MPNet (tests/models/mpnet_fixtures.py) fine-tuned briefly: its .tflite frames with <s>/</s>,
    which MediaPipe's BertTokenizer does not know; the file maps BERT's [CLS]/[SEP] ids onto them."""
    import sys

    from dlpipe.pipelines import api

    require_mediapipe()
    sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
    from mpnet_fixtures import write_tiny_mpnet

    folder = tmp_path_factory.mktemp("edge-mpnet")
    write_tiny_mpnet(folder / "all-mpnet-base-v2")
    patch = pytest.MonkeyPatch()
    patch.setenv("DLPIPE_MPNET_DIR", str(folder / "all-mpnet-base-v2"))
    try:
        api.run("sentiment", data=str(SENTENCES / "amazon_cells_labelled.txt"), out=folder / "run",
                sets=[*TEXT_SETS, "model.architecture=mpnet", "train.epochs=2", "train.learning_rate=0.001"],
                echo=lambda _: None)
    finally:
        patch.undo()
    return folder / "run"


def alone(artifact: Path, folder: Path) -> Path:
    """The .tflite copied into an empty folder: nothing beside it to read."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(artifact, folder / artifact.name))


def dlpipe_labels(artifact: Path, inputs: list[str], out: Path) -> list[str]:
    result = CliRunner().invoke(main, ["predict", str(artifact), *inputs, "--top-k", "1", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["label"] for line in out.read_text().splitlines()]


def top_names(answer: list | dict) -> list[str]:
    assert not isinstance(answer, dict), answer  # {"error": ...}: MediaPipe refused the file
    return [max(categories, key=lambda c: c["score"])["category_name"] for categories in answer]


def as_dlpipe_prepares(photo: Path, prep, folder: Path) -> Path:
    """The photo as dlpipe's preprocessing makes it, saved losslessly at the model's input size."""
    import tensorflow as tf

    from dlpipe.data.images import tf_path
    from dlpipe.data.preprocess import load_image

    pixels = load_image(tf.constant(tf_path(str(photo))), prep).numpy()
    target = folder / f"{photo.parent.name}_{photo.stem}.png"
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(target)
    return target


@pytest.mark.parametrize("file_name", ["model.tflite", "model_int8.tflite"], ids=["float32", "int8"])
def test_mediapipe_image_classifier_agrees_with_dlpipe_predict(image_run, file_name, tmp_path):
    from dlpipe.models.runtimes import load_runtime

    artifact = alone(image_run / file_name, tmp_path / "alone")
    runtime = load_runtime(artifact)
    # the run adds the unknown answer (evaluate.unknown: auto, a pretrained backbone): its label comes last
    assert md.read_labels(artifact) == runtime.class_names == ["ants", "bees", "unknown"]
    assert json.loads(md.associated_files(artifact)["preprocessing.json"])["image_size"] == 96
    chosen = photos()
    ours = dlpipe_labels(artifact, [str(p) for p in chosen], tmp_path / "rows.jsonl")
    staged_dir = tmp_path / "staged"
    staged_dir.mkdir()
    staged = [as_dlpipe_prepares(p, runtime.preprocessing, staged_dir) for p in chosen]
    prepared, raw = run_mediapipe({"image": [{"model": str(artifact), "images": [str(p) for p in staged]},
                                             {"model": str(artifact), "images": [str(p) for p in chosen]}]})["image"]
    theirs, theirs_raw = top_names(prepared), top_names(raw)
    # unknown: about 3% of ant/bee photos by design (evaluate.unknown_keep 0.97), answered alike in every runtime
    assert set(theirs) <= {"ants", "bees", "unknown"} and {"ants", "bees"} <= set(ours)
    agreement = np.mean([a == b for a, b in zip(ours, theirs)])
    raw_agreement = np.mean([a == b for a, b in zip(ours, theirs_raw)])
    truth = [p.parent.name for p in chosen]

    def accuracy(labels: list[str]) -> float:
        return float(np.mean([a == b for a, b in zip(labels, truth)]))

    keras_accuracy = accuracy(dlpipe_labels(image_run / "model.keras", [str(p) for p in chosen], tmp_path / "k.jsonl"))
    print(f"{file_name}: MediaPipe agrees with dlpipe predict on {agreement:.1%} of {len(chosen)} photos as "
          f"dlpipe prepares them, {raw_agreement:.1%} on the raw photos; accuracy Keras {keras_accuracy:.1%}, "
          f"dlpipe {accuracy(ours):.1%}, MediaPipe on raw photos {accuracy(theirs_raw):.1%}")
    # raw photos: MediaPipe decodes a JPEG with its own decoder (up to 3 levels from libjpeg's), so a photo at this
    # weak (96 px, 3-epoch) model's decision boundary can flip, more so in int8; bench/edge_runtimes.py measures the
    # real recipe
    assert agreement >= 0.99 and raw_agreement >= (0.99 if file_name == "model.tflite" else 0.95)
    # the file in MediaPipe scores what the Keras model scores on these labelled photos (measured: 100% each; the
    # photos are the training folder's, so this holds the export to Keras, not the model to unseen photos)
    slack = 0.03 if file_name == "model.tflite" else 0.1  # float32: at most one of 41 photos; int8: four
    assert keras_accuracy >= 0.8, keras_accuracy
    assert accuracy(ours) >= keras_accuracy - slack and accuracy(theirs_raw) >= keras_accuracy - slack


def test_dlpipe_evaluates_an_image_tflite_from_the_file_alone(image_run, tmp_path):
    artifact = alone(image_run / "model_int8.tflite", tmp_path / "alone")
    result = CliRunner().invoke(main, ["evaluate", str(artifact), "--data", str(HYMENOPTERA)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "on 245 inputs" in result.output and "ants: precision" in result.output


@pytest.mark.parametrize("file_name", ["model.tflite", "model_dynamic.tflite"], ids=["float32", "dynamic"])
@pytest.mark.parametrize("run_name", [  # the words tokenizer's and MPNet's runs and checks: long checks (the default
                                      # WordPiece GRU stays in the suite)
                                      pytest.param("text_run", marks=pytest.mark.long), "wordpiece_text_run",
                                      pytest.param("mpnet_text_run", marks=pytest.mark.long)],
                         ids=["words", "wordpiece", "mpnet"])
def test_mediapipe_text_classifier_agrees_with_dlpipe_predict(run_name, file_name, request, tmp_path):
    from dlpipe.data.text import read_labelled_text

    artifact = alone(request.getfixturevalue(run_name) / file_name, tmp_path / "alone")
    subgraph = md.read_metadata(artifact)["subgraphMetadata"][0]
    if run_name == "text_run":  # words: a RegexTokenizer on the one input
        assert subgraph["inputTensorMetadata"][0]["processUnits"][0]["optionsType"] == "RegexTokenizerOptions"
    else:  # WordPiece: a BertTokenizer over ids, mask and segment ids
        assert subgraph["inputProcessUnits"][0]["optionsType"] == "BertTokenizerOptions"
    table = read_labelled_text([SENTENCES / "yelp_labelled.txt", SENTENCES / "amazon_cells_labelled.txt"])
    texts = [" ".join(text.split()) for text in table.texts]  # one line each for the .txt that dlpipe predict reads
    listing = tmp_path / "texts.txt"
    listing.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    ours = dlpipe_labels(artifact, [str(listing)], tmp_path / "rows.jsonl")
    theirs = top_names(run_mediapipe({"text": [{"model": str(artifact), "texts": texts}]})["text"][0])
    assert len(ours) == len(theirs) == len(texts) and set(theirs) == {"0", "1"}
    agreement = np.mean([a == b for a, b in zip(ours, theirs)])
    keras_labels = dlpipe_labels(request.getfixturevalue(run_name) / "model.keras", [str(listing)], tmp_path / "k.jsonl")
    keras_accuracy, accuracy = (np.mean([a == b for a, b in zip(labels, table.labels)]) for labels in (keras_labels, theirs))
    print(f"{file_name}: MediaPipe agrees with dlpipe predict on {agreement:.2%} of {len(texts)} sentences "
          f"(yelp unseen, amazon trained on); accuracy Keras {keras_accuracy:.2%}, MediaPipe {accuracy:.2%}")
    assert agreement >= 0.99
    # held to the Keras model's accuracy on the labelled sentences: float32 within 0.01, dynamic-range within 0.02
    assert keras_accuracy >= 0.6 and accuracy >= keras_accuracy - (0.01 if file_name == "model.tflite" else 0.02)


@pytest.mark.long  # the words tokenizer's run (21 s of set-up) serves long checks only
def test_dlpipe_evaluates_a_text_tflite_from_the_file_alone(text_run, tmp_path):
    artifact = alone(text_run / "model_dynamic.tflite", tmp_path / "alone")
    result = CliRunner().invoke(main, ["evaluate", str(artifact), "--data", str(SENTENCES / "yelp_labelled.txt")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "on 1000 inputs" in result.output


# ----------------------------------------------------------------------------------- the browser (--format web)


def browser_rows(site: Path, query: str, timeout: float = 180) -> list:
    """Serve `site` on 127.0.0.1, open index.html?QUERY&report=1 in headless Chromium, return the rows it POSTs
    (through the same code `dlpipe check-device --web` runs)."""
    from dlpipe.pipelines.web_check import browser_rows as page_rows

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    rows = page_rows(chromium, site, query, timeout)
    assert not isinstance(rows, dict), rows  # {"error": ...}
    return rows


def web_site(run: Path, tmp_path: Path, fmt_dir: str = "web") -> Path:
    from dlpipe.models.export.web import vendor_root
    from dlpipe.pipelines.exporting import export_run

    require(vendor_root().is_dir(), f"MediaPipe Tasks web files ({vendor_root()})",
            "scripts/setup.sh runs npm install --prefix .web-vendor @mediapipe/tasks-vision @mediapipe/tasks-text")
    folder = export_run(run, "web", tmp_path / "export")
    assert folder.name == fmt_dir and (folder / "index.html").is_file() and (folder / "model.tflite").is_file()
    site = tmp_path / "site"
    shutil.copytree(folder, site)
    return site


@pytest.mark.long
def test_web_export_classifies_images_in_the_browser_like_dlpipe_predict(image_run, tmp_path):
    from dlpipe.models.runtimes import load_runtime

    site = web_site(image_run, tmp_path)
    assert md.read_labels(site / "model.tflite") == ["ants", "bees", "unknown"]
    chosen = photos()
    ours = dlpipe_labels(site / "model.tflite", [str(p) for p in chosen], tmp_path / "rows.jsonl")
    (site / "inputs").mkdir()
    staged = [as_dlpipe_prepares(p, load_runtime(site / "model.tflite").preprocessing, site / "inputs") for p in chosen]
    rows = browser_rows(site, "inputs=" + ",".join(f"inputs/{p.name}" for p in staged))
    theirs = top_names([row["categories"] for row in rows])
    agreement = np.mean([a == b for a, b in zip(ours, theirs)])
    print(f"web: MediaPipe in Chromium agrees with dlpipe predict on {agreement:.1%} of {len(chosen)} prepared photos")
    assert len(rows) == len(chosen) and set(theirs) <= {"ants", "bees", "unknown"} and agreement >= 0.99
    truth = [p.parent.name for p in chosen]
    keras_labels = dlpipe_labels(image_run / "model.keras", [str(p) for p in chosen], tmp_path / "keras.jsonl")
    keras_accuracy, accuracy = (np.mean([a == b for a, b in zip(labels, truth)]) for labels in (keras_labels, theirs))
    assert keras_accuracy >= 0.8 and accuracy >= keras_accuracy - 0.03, (accuracy, keras_accuracy)  # one photo of 41


@pytest.mark.long
def test_web_export_classifies_texts_in_the_browser_like_dlpipe_predict(text_run, tmp_path):
    from dlpipe.data.text import read_labelled_text

    site = web_site(text_run, tmp_path)
    table = read_labelled_text([SENTENCES / "yelp_labelled.txt"])
    texts = [" ".join(text.split()) for text in table.texts[:300]]
    (site / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    listing = tmp_path / "texts.txt"
    listing.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    ours = dlpipe_labels(site / "model.tflite", [str(listing)], tmp_path / "rows.jsonl")
    theirs = top_names([row["categories"] for row in browser_rows(site, "inputs=texts.json")])
    agreement = np.mean([a == b for a, b in zip(ours, theirs)])
    print(f"web: MediaPipe in Chromium agrees with dlpipe predict on {agreement:.1%} of {len(texts)} yelp sentences")
    assert len(theirs) == len(texts) and set(theirs) <= {"0", "1"} and agreement >= 0.99
    keras_labels = dlpipe_labels(text_run / "model.keras", [str(listing)], tmp_path / "keras.jsonl")
    keras_accuracy, accuracy = (np.mean([a == b for a, b in zip(labels, table.labels[:300])])
                                for labels in (keras_labels, theirs))
    assert keras_accuracy >= 0.6 and accuracy >= keras_accuracy - 0.02, (accuracy, keras_accuracy)  # unseen yelp
