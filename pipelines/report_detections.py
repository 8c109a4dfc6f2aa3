"""The report page's gallery for a detector: the validation photos with the most missed and false boxes.

Read from metrics.json alone (the evaluate stage keeps every photo's boxes and its true boxes), so an old run's page
gets it too. A detection counts at the run's operating score (`evaluate.min_score`, what `dlpipe predict` keeps);
it finds a true box of its class when their IoU reaches 0.5, the highest-scoring detection first (COCO's matching
at AP50). Each photo is drawn as an SVG over its thumbnail: found boxes green, missed boxes red and dashed, false
detections orange with their class and score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlpipe.pipelines.report_html import esc, paragraph, section

MATCH_IOU = 0.5
WORST = 6


@dataclass
class PhotoErrors:
    """One validation photo: its kept detections, true boxes, and which of them are wrong."""

    path: str
    detections: list[list[float]]  # [x1, y1, x2, y2, score, class index], score >= the operating score
    truth: list[list[Any]]  # [class name, x1, y1, x2, y2, ...]
    missed: list[int]  # indexes into truth
    false: list[int]  # indexes into detections

    @property
    def errors(self) -> int:
        return len(self.missed) + len(self.false)


def iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def photo_errors(path: str, boxes: list[list[float]], truth: list[list[Any]], names: list[str],
                 min_score: float) -> PhotoErrors:
    """Match the photo's detections at `min_score` to its true boxes; the rest are missed or false."""
    kept = sorted((box for box in boxes if box[4] >= min_score), key=lambda box: -box[4])
    unmatched = set(range(len(truth)))
    false = []
    for index, box in enumerate(kept):
        name = names[int(box[5])] if int(box[5]) < len(names) else str(int(box[5]))
        overlaps = [(iou(box[:4], truth[t][1:5]), t) for t in unmatched if truth[t][0] == name]
        best = max(overlaps, default=(0.0, -1))
        if best[0] >= MATCH_IOU:
            unmatched.discard(best[1])
        else:
            false.append(index)
    return PhotoErrors(path, kept, truth, sorted(unmatched), false)


def worst_photos(metrics: dict[str, Any], limit: int = WORST) -> list[PhotoErrors]:
    """The photos with the most missed + false boxes (ties: file order), those with at least one."""
    predictions = metrics.get("predictions") or {}
    names = list(metrics.get("class_names") or [])
    min_score = float(metrics.get("min_score", 0.3))
    photos = [photo_errors(path, boxes, truth, names, min_score) for path, boxes, truth in
              zip(predictions.get("inputs", []), predictions.get("boxes", []), predictions.get("truth", []))]
    ranked = sorted((p for p in photos if p.errors), key=lambda p: -p.errors)
    return ranked[:limit]


def detection_gallery(metrics: dict[str, Any]) -> str:
    """The 'Worst detections' section ('' when every photo's boxes were found and none was false)."""
    worst = worst_photos(metrics)
    if not worst:
        return ""
    names = list(metrics.get("class_names") or [])
    note = paragraph(f"The validation photos with the most missed and false boxes at score {metrics.get('min_score')} "
                     f"(IoU {MATCH_IOU} with a true box of the same class): found boxes green, missed red and dashed, "
                     "false detections orange.", "note")
    cards = [_card(photo, names) for photo in worst]
    return section("Worst detections", note, '<div class="gallery">' + "\n".join(cards) + "</div>")


def _card(photo: PhotoErrors, names: list[str]) -> str:
    missed = ", ".join(str(photo.truth[t][0]) for t in photo.missed)
    false = ", ".join(f"{_name(photo.detections[d], names)} {photo.detections[d][4]:.2f}" for d in photo.false)
    caption = (f"<div>{len(photo.missed)} missed{': ' + esc(missed) if missed else ''}; {len(photo.false)} false"
               f"{': ' + esc(false) if false else ''}</div>")
    return (f'<div class="card">{_drawing(photo, names)}<code title="{esc(photo.path)}">{esc(Path(photo.path).name)}'
            f"</code>{caption}</div>")


def _drawing(photo: PhotoErrors, names: list[str]) -> str:
    """The thumbnail with the boxes as SVG in the photo's own pixels (the viewBox scales both)."""
    from PIL import Image

    from dlpipe.pipelines.report_gallery import thumbnail_uri

    try:
        with Image.open(photo.path) as image:  # the thumbnail is upright: an EXIF quarter turn swaps the sides
            width, height = image.size[::-1] if image.getexif().get(0x0112) in (5, 6, 7, 8) else image.size
        uri = thumbnail_uri(Path(photo.path))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return f'<div class="note">no thumbnail: {esc(type(error).__name__)}: {esc(error)}</div>'
    line = max(1.0, max(width, height) / 150)
    shapes = [_rect(photo.truth[t][1:5], "#d62728", line, dashed=True) for t in photo.missed]
    shapes += [_rect(box[1:5], "#2ca02c", line) for t, box in enumerate(photo.truth) if t not in photo.missed]
    shapes += [_rect(photo.detections[d][:4], "#ff7f0e", line, label=f"{_name(photo.detections[d], names)} "
                     f"{photo.detections[d][4]:.2f}") for d in photo.false]
    return (f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{esc(Path(photo.path).name)}">'
            f'<image href="{uri}" width="{width}" height="{height}"/>{"".join(shapes)}</svg>')


def _rect(box: list[Any], colour: str, line: float, dashed: bool = False, label: str = "") -> str:
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    dash = f' stroke-dasharray="{2 * line:.1f}"' if dashed else ""
    text = (f'<text x="{x1:.1f}" y="{max(y1 - line, 6 * line):.1f}" fill="{colour}" font-size="{6 * line:.1f}">'
            f"{esc(label)}</text>") if label else ""
    return (f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" fill="none" '
            f'stroke="{colour}" stroke-width="{line:.1f}"{dash}/>{text}')


def _name(box: list[float], names: list[str]) -> str:
    index = int(box[5])
    return names[index] if index < len(names) else str(index)
