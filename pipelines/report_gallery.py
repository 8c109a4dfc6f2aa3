"""The report page's gallery of worst errors: the most confident wrong answers, worst masks, per task.

Read from metrics.json alone (the evaluate stage lists each error with its confidence), so the gallery of an old
run can be rebuilt; photos are shown as small embedded JPEG thumbnails read from where the run found them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from dlpipe.pipelines.report_html import data_uri, esc, paragraph, section

WORST = 12  # cards per gallery
THUMBNAIL_PIXELS = 160


def gallery_section(task: str, metrics: dict[str, Any]) -> str:
    """The worst-errors section for `task` ('' for a task without one, e.g. a GAN)."""
    if task in ("image", "text"):
        return _classification_gallery(metrics, photos=task == "image")
    if task == "multilabel":
        return _multilabel_gallery(metrics)
    if task == "segment":
        return _segment_gallery(metrics)
    return ""


def worst_errors(metrics: dict[str, Any], limit: int = WORST) -> list[dict[str, Any]]:
    """metrics.json's misclassified inputs, most confident wrong answer first."""
    errors = [e for e in metrics.get("errors", []) if isinstance(e, dict)]
    return sorted(errors, key=lambda e: -float(e.get("confidence") or 0.0))[:limit]


def _classification_gallery(metrics: dict[str, Any], photos: bool) -> str:
    errors = worst_errors(metrics)
    total = len(metrics.get("errors", []))
    if "errors" not in metrics:
        return ""
    if not errors:
        return section("Worst errors", paragraph("No validation example was misclassified."))
    cards = []
    for error in errors:
        caption = (f'<div>true <b>{esc(error.get("true"))}</b>, predicted <b class="bad">{esc(error.get("predicted"))}'
                   f'</b> ({float(error.get("confidence") or 0.0):.3f})</div>')
        if photos:
            cards.append(_photo_card(str(error.get("input")), caption))
        else:
            cards.append(f'<div class="card text"><div class="sentence">{esc(error.get("input"))}</div>{caption}</div>')
    note = paragraph(f"The {len(errors)} most confident wrong answers of {total} on the validation split "
                     "(confidence: the probability the model gave its wrong answer).", "note")
    return section("Worst errors", note, '<div class="gallery">' + "\n".join(cards) + "</div>")


def _multilabel_gallery(metrics: dict[str, Any]) -> str:
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
            ranked.append((max(w[0] for w in wrong), path, sorted(wrong, reverse=True)))
    if not predictions:
        return ""
    if not ranked:
        return section("Worst errors", paragraph("Every validation photo got exactly its labels."))
    ranked.sort(key=lambda item: -item[0])
    cards = []
    for _, path, wrong in ranked[:WORST]:
        lines = "".join(f'<div><span class="bad">{kind}</span> <b>{esc(name)}</b> (score {score:.3f})</div>'
                        for _, name, kind, score in wrong)
        cards.append(_photo_card(str(path), lines))
    note = paragraph(f"The {len(cards)} photos with the most confident wrong label of {len(ranked)} with any "
                     "(false: predicted but absent; missed: present but not predicted).", "note")
    return section("Worst errors", note, '<div class="gallery">' + "\n".join(cards) + "</div>")


def _segment_gallery(metrics: dict[str, Any]) -> str:
    worst = metrics.get("worst_images") or []
    if not worst:
        return ""
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
        image = ImageOps.exif_transpose(image)
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    return data_uri(buffer.getvalue(), "image/jpeg")
