"""The report page's gallery of worst errors: the most confident wrong answers, worst masks, per task.

Read from metrics.json alone (the evaluate stage lists each error with its confidence), so the gallery of an old
run can be rebuilt; photos are shown as small embedded JPEG thumbnails read from where the run found them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from dlpipe.pipelines.report_html import data_uri, esc, figure, paragraph, section, table

WORST = 12  # cards per gallery
THUMBNAIL_PIXELS = 160
MAX_SOURCE_PIXELS = 50_000_000  # a photo swapped for a huge one after the run gets a note, not gigabytes of RAM


def gallery_section(task: str, metrics: dict[str, Any], run: Path | None = None,
                    explained: dict[str, Any] | None = None) -> str:
    """The worst-errors section for `task` ('' for a task without one, e.g. a GAN), with the heat maps or word
    scores of `explained` (OUT/explain/explain.json, files relative to `run`) where the run wrote them."""
    if task in ("image", "text"):
        return _classification_gallery(metrics, task == "image", run or Path("."), explained or {})
    if task == "multilabel":
        return _multilabel_gallery(metrics, run or Path("."), explained or {})
    if task == "segment":
        return _segment_gallery(metrics, run or Path("."))
    if task == "detect":
        from dlpipe.pipelines.report_detections import detection_gallery

        return detection_gallery(metrics)
    return ""


def worst_errors(metrics: dict[str, Any], limit: int = WORST) -> list[dict[str, Any]]:
    """metrics.json's misclassified inputs, most confident wrong answer first."""
    errors = [e for e in metrics.get("errors", []) if isinstance(e, dict)]
    return sorted(errors, key=lambda e: -float(e.get("confidence") or 0.0))[:limit]


def _classification_gallery(metrics: dict[str, Any], photos: bool, run: Path, explained: dict[str, Any]) -> str:
    errors = worst_errors(metrics)
    total = len(metrics.get("errors", []))
    if "errors" not in metrics:
        return ""
    if not errors:
        return section("Worst errors", paragraph("No validation example was misclassified."))
    cards = []
    items = explained.get("items") if isinstance(explained.get("items"), dict) else {}
    for error in errors:
        caption = (f'<div>true <b>{esc(error.get("true"))}</b>, predicted <b class="bad">{esc(error.get("predicted"))}'
                   f'</b> ({float(error.get("confidence") or 0.0):.3f})</div>')
        item = items.get(str(error.get("input"))) or {}
        if photos:
            cards.append(_photo_card(str(error.get("input")), caption + heat_map(run, item)))
        else:
            sentence = word_scores(item) or esc(error.get("input"))
            cards.append(f'<div class="card text"><div class="sentence">{sentence}</div>{caption}</div>')
    notes = [paragraph(f"The {len(errors)} most confident wrong answers of {total} on the validation split "
                       "(confidence: the probability the model gave its wrong answer).", "note")]
    if explained.get("note") or explained.get("reason"):
        notes.append(paragraph(str(explained.get("note") or f"not explained: {explained['reason']}"), "note"))
    return section("Worst errors", *notes, '<div class="gallery">' + "\n".join(cards) + "</div>")


def heat_map(run: Path, item: dict[str, Any]) -> str:
    """The photo's Grad-CAM overlay (a PNG of the run folder), embedded; '' when there is none."""
    path = run / str(item.get("file", ""))
    if not item.get("file") or not path.is_file() or path.resolve().parent != (run / "explain").resolve():
        return ""
    return (f'<img class="heat" src="{data_uri(path.read_bytes(), "image/png")}" '
            f'alt="where the model looked for {esc(item.get("class"))}">'
            f'<div class="note">where it looked for {esc(item.get("class"))}</div>')


def word_scores(item: dict[str, Any]) -> str:
    """The sentence's words shaded by their share of the wrong answer (red: towards it, blue: away); ''
    without scores."""
    words = [w for w in item.get("words", []) if isinstance(w, list) and len(w) == 2]
    if not words:
        return ""
    top = max(abs(float(score)) for _, score in words) or 1.0
    spans = []
    for word, score in words:
        alpha = min(1.0, abs(float(score)) / top) * 0.6
        colour = "220,40,40" if float(score) > 0 else "40,90,220"
        spans.append(f'<span style="background: rgba({colour},{alpha:.2f})" title="{float(score):+.3f}">'
                     f"{esc(word)}</span>")
    return " ".join(spans)


def worst_multilabel(metrics: dict[str, Any], limit: int = WORST) -> tuple[list[tuple[str, list]], int]:
    """Multi-label photos by their most confident wrong label, worst first: (path, [(confidence, label, 'false' or
    'missed', score), ...] worst first) for the first `limit`, and how many photos had any wrong label."""
    predictions = metrics.get("predictions") or {}
    thresholds = metrics.get("thresholds") or {}
    names = list(thresholds) or list(metrics.get("class_names", []))
    ranked = []
    for path, scores, truth in zip(predictions.get("inputs", []), predictions.get("scores", []),
                                   predictions.get("truth", [])):
        wrong = []
        for name, score, present in zip(names, scores, truth):
            predicted = score >= thresholds.get(name, 0.5)
            if predicted != bool(present):
                wrong.append((score if predicted else 1.0 - score, name, "false" if predicted else "missed", score))
        if wrong:
            ranked.append((max(w[0] for w in wrong), str(path), sorted(wrong, reverse=True)))
    ranked.sort(key=lambda item: -item[0])
    return [(path, wrong) for _, path, wrong in ranked[:limit]], len(ranked)


def _multilabel_gallery(metrics: dict[str, Any], run: Path, explained: dict[str, Any]) -> str:
    if not metrics.get("predictions"):
        return ""
    worst, total = worst_multilabel(metrics)
    if not worst:
        return section("Worst errors", paragraph("Every validation photo got exactly its labels."))
    items = explained.get("items") if isinstance(explained.get("items"), dict) else {}
    cards = []
    for path, wrong in worst:
        lines = "".join(f'<div><span class="bad">{kind}</span> <b>{esc(name)}</b> (score {score:.3f})</div>'
                        for _, name, kind, score in wrong)
        cards.append(_photo_card(path, lines + heat_map(run, items.get(path) or {})))
    notes = [paragraph(f"The {len(cards)} photos with the most confident wrong label of {total} with any "
                       "(false: predicted but absent; missed: present but not predicted).", "note")]
    if explained.get("note") or explained.get("reason"):
        notes.append(paragraph(str(explained.get("note") or f"not explained: {explained['reason']}"), "note"))
    return section("Worst errors", *notes, '<div class="gallery">' + "\n".join(cards) + "</div>")


def _segment_gallery(metrics: dict[str, Any], run: Path) -> str:
    worst = metrics.get("worst_images") or []
    if not worst:
        return ""
    if (run / "worst_masks.png").is_file():  # the photos with their true and predicted masks, drawn by the run
        rows = [(item.get("input", ""), item.get("pixel_accuracy")) for item in worst]
        return section("Worst masks", figure(run / "worst_masks.png", "the worst validation masks: photo, true mask, "
                                             "predicted mask"), table(["photo", "pixel accuracy"], rows))
    cards = [_photo_card(str(item.get("input")),
                         f"<div>pixel accuracy <b>{float(item.get('pixel_accuracy') or 0.0):.3f}</b></div>")
             for item in worst[:WORST]]
    note = paragraph("The validation images whose predicted mask agrees least with the true one.", "note")
    return section("Worst masks", note, '<div class="gallery">' + "\n".join(cards) + "</div>")


def _photo_card(path: str, caption: str) -> str:
    """A card with the photo's thumbnail (or why there is none), its file name and `caption` (HTML)."""
    from PIL import Image

    try:
        thumbnail = f'<img src="{thumbnail_uri(Path(path))}" alt="{esc(Path(path).name)}">'
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        thumbnail = f'<div class="note">no thumbnail: {esc(type(error).__name__)}: {esc(error)}</div>'
    return f'<div class="card">{thumbnail}<code title="{esc(path)}">{esc(Path(path).name)}</code>{caption}</div>'


def thumbnail_uri(path: Path, size: int = THUMBNAIL_PIXELS) -> str:
    """The photo at `path`, upright and at most `size` pixels on a side, as a JPEG data URI."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.width * image.height > MAX_SOURCE_PIXELS:  # checked from the header, before decoding
            raise ValueError(f"{image.width}x{image.height} pixels, over the {MAX_SOURCE_PIXELS:,} a thumbnail reads")
        image.draft("RGB", (size, size))  # a JPEG decodes at 1/2, 1/4 or 1/8 scale when that is enough
        image = ImageOps.exif_transpose(image)
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    return data_uri(buffer.getvalue(), "image/jpeg")
