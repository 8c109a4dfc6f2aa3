"""runs.html of `dlpipe runs`: the comparison of run folders as one self-contained page (report.html's style,
no network: inline CSS, no scripts, nothing fetched)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from dlpipe import atomic
from dlpipe.pipelines.report_html import page, paragraph, section, table
from dlpipe.pipelines.runs_table import RunRow, config_value, differing_keys, summary_rows


def runs_page(rows: list[RunRow], unusable: list[tuple[Path, str]]) -> str:
    """The page's HTML: the comparison, the config keys that differ, each run's folder and status, the problems."""
    compared = [row for row in rows if row.value is not None or not row.problem]
    header, lines = summary_rows(compared)
    keys = differing_keys(compared)
    differences = table(["key", *(row.name for row in compared)],
                        ([key, *(config_value(row, key) for row in compared)] for key in keys))
    same = paragraph("The runs' configs are the same (data aside).", "note") if len(compared) > 1 and not keys else ""
    folders = table(["run", "pipeline", "status", "folder", "tracked"],
                    ([row.name, row.pipeline, row.status or "-", str(row.path.resolve()), row.tracking or "-"]
                     for row in rows))
    problems = table(["folder", "why"], [(str(row.path), row.problem) for row in rows if row.problem]
                     + [(str(path), why) for path, why in unusable])
    note = paragraph("main metric: a multi-label model's micro F1, a detector's mAP, a segmenter's mean IoU, a "
                     "classifier's accuracy (validation split, 95% interval); a GAN's last Fréchet distance. "
                     "train: the train stage's wall time; total: every stage's.", "note")
    sections = [
        section("Runs", table(header, lines), note),
        section("Config that differs", differences, same),
        section("Folders", folders),
        section("Not compared or incomplete", problems),
    ]
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return page(f"dlpipe runs: {len(compared)} compared", f"written {made} by dlpipe runs", sections)


def write_runs_page(path: str | Path, rows: list[RunRow], unusable: list[tuple[Path, str]]) -> Path:
    """Write the page atomically; returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, runs_page(rows, unusable))
    return target
