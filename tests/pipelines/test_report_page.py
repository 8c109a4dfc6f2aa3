"""OUT/report.html: what a tiny image run's page holds, that `dlpipe report` rebuilds it, that user strings are
escaped, and that headless Chromium shows it without fetching anything."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from assets import require
from conftest import TINY_SETS, write_color_images
from dlpipe.pipelines.cli import main

NO_TENSORFLOW = ("import sys; from dlpipe.pipelines.report_page import write_report_page; write_report_page(sys.argv[1]); "
                 "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
                 "assert not loaded, loaded[:5]")
RED_CLASS = "<script>red"  # a legal class folder name that is markup: it must be shown, never run


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """A tiny image run whose validation folder holds one certain error (a red photo filed under blue) and whose
    training folder holds a corrupt file: (run folder, the page's text)."""
    from PIL import Image

    from dlpipe.pipelines import api

    root = tmp_path_factory.mktemp("report-data")
    write_color_images(root / "train" / "blue", "blue", 24, seed=2)
    write_color_images(root / "train" / RED_CLASS, "red", 24, seed=1)
    (root / "train" / "blue" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"junk" * 50)
    write_color_images(root / "val" / "blue", "blue", 5, seed=5)
    write_color_images(root / "val" / RED_CLASS, "red", 5, seed=6)
    Image.fromarray(np.full((40, 40, 3), (230, 20, 20), np.uint8)).save(root / "val" / "blue" / "planted_red.png")
    out = tmp_path_factory.mktemp("report-run") / "tiny-report-run"
    api.run("image-classify", data=str(root / "train"), out=out, echo=lambda _: None,
            sets=[*TINY_SETS, "export.formats=[keras]", "train.epochs=12", "train.learning_rate=0.003",
                  "augment.enabled=false",  # random flips drawn in a parallel map differ run to run: a flaky Grad-CAM
                  f"load.val_path={root / 'val'}"])
    return out, (out / "report.html").read_text(encoding="utf-8")


def test_run_writes_a_page_with_counts_metrics_plots_artifacts_and_the_worst_error(report_run):
    out, page = report_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8  # the model learnt colours, so the planted photo is a confident error
    assert re.search(r"<td>blue</td><td class=\"num\">24</td>", page)  # training counts per class
    skipped = json.loads((out / "report.json").read_text())["data"]["skipped"]
    assert [Path(item["path"]).name for item in skipped] == ["corrupt.jpg"]
    assert f"<td>{html.escape(skipped[0]['path'])}</td><td></td><td>{html.escape(skipped[0]['reason'])}</td>" in page
    assert f"<td>accuracy</td><td class=\"num\">{metrics['accuracy']:.3f}</td>" in page
    low, high = metrics["accuracy_interval"]
    assert f"{low:.3f} - {high:.3f}" in page
    plots = page[page.index("<h2>Plots</h2>"):page.index("<h2>Worst errors</h2>")]
    assert plots.count('src="data:image/png;base64,') == 2  # training curves and confusion matrix, embedded
    assert "<td>model.keras</td><td>keras</td>" in page and "ms per input" in page
    gallery = page[page.index("<h2>Worst errors</h2>"):]
    cards = gallery.split('<div class="card">')[1:]
    assert cards and "planted_red.png" in cards[0]  # the most confident wrong answer comes first
    assert 'src="data:image/jpeg;base64,' in cards[0]  # with its thumbnail
    assert 'class="heat" src="data:image/png;base64,' in cards[0]  # and where the model looked
    worst = max(metrics["errors"], key=lambda e: e["confidence"])
    assert Path(worst["input"]).name == "planted_red.png" and worst["true"] == "blue" and worst["confidence"] > 0.5


def test_user_strings_are_escaped(report_run):
    _, page = report_run
    assert RED_CLASS not in page and "&lt;script&gt;red" in page
    assert "<script" not in page.lower()  # no script at all: nothing runs, nothing is fetched
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)


def test_dlpipe_report_rebuilds_the_page_without_tensorflow(report_run, tmp_path):
    out, page = report_run
    copy = tmp_path / "old-run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints", "report.html"))
    result = CliRunner().invoke(main, ["report", str(copy)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").is_file() and str(copy / "report.html") in result.output
    rebuilt = (copy / "report.html").read_text(encoding="utf-8")
    assert rebuilt.replace(str(copy.resolve()), "RUN").replace(copy.name, "NAME") == \
        page.replace(str(out.resolve()), "RUN").replace(out.name, "NAME")

    fresh = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(copy)], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert (copy / "report.html").read_text(encoding="utf-8") == rebuilt

    missing = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no run here" in missing.output and "Traceback" not in missing.output


@pytest.mark.long
def test_chromium_shows_the_page_offline_with_every_image(report_run, tmp_path):
    from PIL import Image

    from headless_page import chromium_path, visit

    chromium = chromium_path()
    require(bool(chromium), "chromium on PATH", "Debian: apt-get install chromium; scripts/setup.sh does as root")
    out, page = report_run
    seen = visit((out / "report.html").as_uri(), tmp_path / "profile", chromium)
    assert seen.requested[0] == (out / "report.html").as_uri()
    assert all(url.startswith(("file:", "data:")) for url in seen.requested), seen.requested  # nothing off the machine
    assert seen.failed == []
    assert len(seen.images) == page.count("<img ") >= 3  # two plots and the worst error's thumbnail at least
    assert all(image["complete"] and image["width"] > 0 for image in seen.images), seen.images
    shot = Image.open(io.BytesIO(seen.screenshot)).convert("L")
    assert shot.size[0] > 100 and len(set(shot.getdata())) > 16  # text and tables drawn, not a blank screen


def test_a_text_run_shows_its_worst_sentences_escaped(tmp_path):
    from conftest import TINY_TEXT_SETS, write_sentences
    from dlpipe.pipelines import api

    planted = "Really great phone & <b>love</b> it."  # positive words filed as negative, with markup
    write_sentences(tmp_path / "train.txt", 160, seed=3)
    val = write_sentences(tmp_path / "val.txt", 30, seed=4)
    val.write_text(val.read_text(encoding="utf-8") + f"{planted}\t0\n", encoding="utf-8")
    out = tmp_path / "text-run"
    api.run("sentiment", data=str(tmp_path / "train.txt"), out=out, echo=lambda _: None,
            sets=[*TINY_TEXT_SETS, "export.formats=[keras]", f"load.val_path={val}"])
    page = (out / "report.html").read_text(encoding="utf-8")
    worst = max(json.loads((out / "metrics.json").read_text())["errors"], key=lambda e: e["confidence"])
    assert worst["input"] == planted and worst["true"] == "0"
    cards = page[page.index("<h2>Worst errors</h2>"):].split('<div class="card text">')[1:]
    assert cards and html.escape("<b>love</b>") in cards[0]
    words = json.loads((out / "explain" / "explain.json").read_text())["items"][planted]["words"]
    assert max(words, key=lambda w: w[1])[0] in ("great", "<b>love</b>")  # a word that made it say positive
    assert 'title="+' in cards[0]  # each word shaded by its score
    assert "<b>love" not in page and "<img " in page  # the plots; no thumbnails for sentences


def test_grad_cam_looks_at_the_half_of_each_colour_it_explains(report_run):
    from dlpipe.models import artifacts
    from dlpipe.models.gradcam import grad_cam

    out, _ = report_run
    model = artifacts.load_keras(out / "model.keras")
    names = (out / "labels.txt").read_text(encoding="utf-8").split("\n")
    pixels = np.random.default_rng(0).integers(0, 110, size=(2, 32, 32, 3)).astype(np.float32)
    pixels[0, :, :16, 0] += 120  # left half red, right half blue
    pixels[0, :, 16:, 2] += 120
    pixels[1] = pixels[0, :, ::-1]  # its mirror: red on the right
    explained = 0
    for name, red_side in ((RED_CLASS, 0), ("blue", 1)):
        heat = grad_cam(model, pixels, [names.index(name)] * 2)
        assert heat.shape[0] == 2 and heat.shape[2] >= 2
        if heat.max() == 0.0:
            # a two-class CNN may score one colour only by the absence of the other's features: its map is empty
            # (with rounded resizing one seed's model had no positive evidence for red); the other class's is not
            continue
        half = heat.shape[2] // 2
        sides = [heat[0, :, :half].mean(), heat[0, :, half:].mean()]
        mirrored = [heat[1, :, half:].mean(), heat[1, :, :half].mean()]
        assert sides[red_side] > sides[1 - red_side] and mirrored[red_side] > mirrored[1 - red_side], name
        explained += 1
    assert explained >= 1


def test_a_run_that_stopped_early_still_gets_a_page_naming_the_failure(tmp_path):
    from dlpipe.pipelines.report_page import write_report_page

    skipped = [{"path": f"photos/<img src=x onerror=alert(1)>{i}.jpg", "reason": "cannot be decoded"} for i in range(250)]
    report = {"pipeline": "image-classify", "task": "image", "data": {"classes": {"a&b": 3, "c": 4}, "skipped": skipped},
              "stages": {"load": {"status": "done", "seconds": 0.1, "summary": "7 images"},
                         "train": {"status": "failed", "error": "train: loss is NaN at epoch 2 <lower the rate>"}}}
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    page = write_report_page(tmp_path).read_text(encoding="utf-8")
    assert "<td>a&amp;b</td>" in page and "<h3>Skipped (250)</h3>" in page and "and 50 more" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;0.jpg" in page
    assert "<td>failed</td><td>-</td><td>train: loss is NaN at epoch 2 &lt;lower the rate&gt;</td>" in page
    assert "Metrics" not in page and "Worst errors" not in page  # no metrics.json: those sections are left out


def test_a_run_below_the_quality_gate_still_writes_its_page(tmp_path):
    from conftest import TINY_TEXT_SETS, write_sentences
    from dlpipe.errors import DlpipeError
    from dlpipe.pipelines import api

    write_sentences(tmp_path / "train.txt", 80, seed=3)
    val = write_sentences(tmp_path / "val.txt", 10, seed=4)
    val.write_text(val.read_text(encoding="utf-8") + "Great love it.\t0\nGreat love it.\t1\n", encoding="utf-8")
    out = tmp_path / "gated-run"
    with pytest.raises(DlpipeError, match="below evaluate.min_accuracy"):  # one of the twins is wrong, always
        api.run("sentiment", data=str(tmp_path / "train.txt"), out=out, echo=lambda _: None,
                sets=[*TINY_TEXT_SETS, "train.epochs=1", "evaluate.min_accuracy=1.0", f"load.val_path={val}"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "quality gate (min_accuracy 1.0): FAILED" in page and "<td>export</td>" not in page


def test_multilabel_photos_get_a_heat_map_for_their_most_confident_wrong_label(report_run, tmp_path):
    from dlpipe.models import artifacts
    from dlpipe.models.tasks import TASKS
    from dlpipe.pipelines.report_explain import explain_worst_errors
    from dlpipe.pipelines.report_page import write_report_page
    from dlpipe.pipelines.stage import RunContext

    out, _ = report_run  # its colour model stands in for a multi-label one: Grad-CAM needs only the backbone
    planted = max(json.loads((out / "metrics.json").read_text())["errors"], key=lambda e: e["confidence"])["input"]
    other = str(next(Path(planted).parent.glob("blue_*")))
    names = (out / "labels.txt").read_text(encoding="utf-8").split("\n")[:2]
    truth, scores = {"blue": 1, RED_CLASS: 0}, [{"blue": 0.2, RED_CLASS: 0.1}, {"blue": 0.3, RED_CLASS: 0.95}]
    metrics = {"thresholds": dict.fromkeys(names, 0.5), "predictions": {  # columns follow labels.txt
        "inputs": [other, planted], "truth": [[truth[n] for n in names]] * 2,
        "scores": [[row[n] for n in names] for row in scores]}}
    task = TASKS.get("multilabel")
    side = artifacts.read_side_files(out / "model.keras")
    ctx = RunContext(out_dir=tmp_path, seed=0, config=None, task=task, report={"task": "multilabel"},
                     class_names=names, model=artifacts.load_keras(out / "model.keras"), metrics=metrics,
                     preprocessing=task.preprocessing_from_dict(side.preprocessing))
    assert explain_worst_errors(ctx) == "explained 2 worst errors (grad-cam)"
    items = json.loads((tmp_path / "explain" / "explain.json").read_text())["items"]
    assert items[planted]["class"] == RED_CLASS and items[other]["class"] == "blue"  # false red 0.95; missed blue 0.8
    (tmp_path / "report.json").write_text(json.dumps({"task": "multilabel"}))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    page = write_report_page(tmp_path).read_text(encoding="utf-8")
    cards = page[page.index("<h2>Worst errors</h2>"):].split('<div class="card">')[1:]
    assert [Path(planted).name in cards[0], Path(other).name in cards[1]] == [True, True]
    assert all('class="heat"' in card for card in cards) and "where it looked for &lt;script&gt;red" in cards[0]


def test_a_photo_too_large_for_a_thumbnail_is_named_not_decoded(tmp_path, monkeypatch):
    from PIL import Image

    from dlpipe.pipelines import report_gallery

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "big.png")
    errors = {"errors": [{"input": str(tmp_path / "big.png"), "true": "a", "predicted": "b", "confidence": 0.9},
                         {"input": str(tmp_path / "gone.jpg"), "true": "a", "predicted": "b", "confidence": 0.8}]}
    assert report_gallery.gallery_section("image", errors).count('src="data:image/jpeg') == 1
    monkeypatch.setattr(report_gallery, "MAX_SOURCE_PIXELS", 1000)  # the real limit: 50 Mpx; 40x30 is 1,200
    shown = report_gallery.gallery_section("image", errors)
    assert "<img" not in shown and "40x30 pixels, over the 1,000 a thumbnail reads" in shown
    assert "no thumbnail: FileNotFoundError" in shown  # a photo moved since the run: its card says so


def test_cross_validation_shows_the_pooled_estimate_with_its_interval_and_each_fold(tmp_path):
    from dlpipe.pipelines.report_page import write_report_page
    from dlpipe.pipelines.training.crossval import summarize

    folds = [{"accuracy": a, "count": 10, "accuracy_interval": [a - 0.2, 1.0], "macro_f1": a, "seconds": 3.0,
              "confusion_matrix": [[5, 0], [round(10 * (1 - a)), 5 - round(10 * (1 - a))]]} for a in (0.9, 0.8, 1.0)]
    cv = summarize(folds)  # what a run with train.cv_folds=3 writes to cv.json
    (tmp_path / "report.json").write_text(json.dumps({"task": "image"}))
    (tmp_path / "cv.json").write_text(json.dumps(cv))
    page = write_report_page(tmp_path).read_text(encoding="utf-8")
    low, high = cv["pooled"]["accuracy_interval"]
    assert cv["pooled"]["correct"] == 27 and f"<td>pooled accuracy</td><td class=\"num\">0.900</td><td>{low:.3f} - {high:.3f}</td>" in page
    assert "<td>accuracy mean</td><td class=\"num\">0.900</td>" in page and page.count("<td class=\"num\">3.000</td>") == 3


def test_grad_cam_refuses_a_backbone_without_a_spatial_feature_map():
    from dlpipe.models.backbones import BACKBONES
    from dlpipe.models.classifier import build_classifier
    from dlpipe.models.gradcam import grad_cam

    mlp = build_classifier(BACKBONES.get("mlp"), 2, 16, None)
    with pytest.raises(ValueError, match="no spatial feature map"):
        grad_cam(mlp, np.zeros((1, 16, 16, 3), np.float32), [0])
