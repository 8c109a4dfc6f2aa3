"""What `dlpipe doctor` writes: doctor.csv (one row per problem, ready for `--set load.exclude=doctor.csv`) and
doctor.html (the same, readable, with thumbnails of the suspected label errors), both atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dlpipe.pipelines.doctor import Diagnosis
from dlpipe.pipelines.report_html import data_uri, esc, page, paragraph, section, table

CSV_FILE = "doctor.csv"
HTML_FILE = "doctor.html"
CSV_COLUMNS = ["path", "problem", "detail", "suggested action"]
PROBLEM_HEADINGS = {
    "label_error": "Likely label errors",
    "cross_class_duplicate": "Duplicates across classes",
    "split_duplicate": "Duplicates across the train/validation split",
    "conflicting_labels": "Same or nearly the same text, different labels",
    "exact_duplicate": "Exact duplicates",
    "near_duplicate": "Near-duplicates",
    "unreadable": "Unreadable files",
    "class_imbalance": "Class imbalance",
}
THUMBNAILS = 48  # label-error cards with a picture; the table lists every one


def write_doctor_files(diagnosis: Diagnosis, out_dir: Path) -> tuple[Path, Path]:
    """OUT/doctor.csv and OUT/doctor.html."""
    from dlpipe import atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for finding in diagnosis.findings:
        writer.writerow([finding.path, finding.problem, finding.detail, finding.action])
    csv_path, html_path = out_dir / CSV_FILE, out_dir / HTML_FILE
    atomic.write_text(csv_path, buffer.getvalue())
    atomic.write_text(html_path, doctor_html(diagnosis))
    return csv_path, html_path


def doctor_html(diagnosis: Diagnosis) -> str:
    """The self-contained page: a summary, the label-error gallery, then one table per kind of problem."""
    counts = table(["class", "count"], diagnosis.class_counts.items())
    found = table(["problem", "files"], [(PROBLEM_HEADINGS[p], len(diagnosis.of(p))) for p in PROBLEM_HEADINGS
                                       if p not in ("split_duplicate", "conflicting_labels") or diagnosis.of(p)])  # shown when checked
    method = paragraph(diagnosis.method) if diagnosis.method else paragraph(
        f"Label errors: confident learning (cleanlab) on out-of-fold probabilities of a logistic-regression probe "
        f"over features of {diagnosis.backbone}, {diagnosis.folds} folds, C={diagnosis.probe_c} (lowest out-of-fold "
        f"log-loss), out-of-fold accuracy {diagnosis.probe_accuracy:.3f} on the labels as given. Apply the CSV to a run with "
        f"--set load.exclude=doctor.csv after deleting the rows you want to keep.") if diagnosis.probe_c else paragraph(
        "Text: duplicates, near-duplicates (character n-grams) and conflicting labels; label errors are not "
        "searched for (a TF-IDF probe flags mostly its own mistakes). Row N is the file's N-th labelled row.")
    summary = section("Summary", method, counts, found)
    sections = [summary, section(PROBLEM_HEADINGS["label_error"], _gallery(diagnosis))]
    for problem, heading in PROBLEM_HEADINGS.items():
        rows = [(f.path, f.detail, f.action) for f in diagnosis.of(problem)]
        sections.append(section(heading if problem != "label_error" else heading + ": all",
                                table(["path", "detail", "suggested action"], rows)))
    total = len(diagnosis.findings)
    return page(f"dlpipe doctor: {diagnosis.data}", f"{total} findings in {sum(diagnosis.class_counts.values())} "
                f"items of {len(diagnosis.class_counts)} classes", sections)


def _gallery(diagnosis: Diagnosis) -> str:
    cards = []
    for score in diagnosis.label_scores[:THUMBNAILS]:
        thumb = _thumbnail(score["path"])
        image = f'<img src="{thumb}" alt="{esc(Path(score["path"]).name)}">' if thumb else ""
        cards.append(f'<div class="card">{image}<div><code>{esc(Path(score["path"]).name)}</code></div>'
                     f'<div>in <b>{esc(score["given"])}</b>, looks like <b class="bad">{esc(score["predicted"])}</b> '
                     f'({score["confidence"]:.2f})</div></div>')
    return f'<div class="gallery">{"".join(cards)}</div>' if cards else ""


def _thumbnail(path: str, size: int = 160) -> str:
    """A small JPEG of the photo as a data URI, or "" when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=80)
    except (OSError, ValueError):
        return ""
    return data_uri(buffer.getvalue(), "image/jpeg")
