"""Checks that a run's MODEL_CARD.md states what the run's own files hold (shared by the per-task e2e tests)."""

from __future__ import annotations

import json
from pathlib import Path


def card_artifact_rows(card: str) -> dict[str, list[str]]:
    """The Artifacts table of a card: file name -> its cells."""
    section = card.split("## Artifacts", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip().rstrip("/"): [c.strip() for c in cells] for cells in rows[1:]}


def assert_card_states_the_run(run: Path, expected_lines: list[str], fidelity: str, digits: int = 3) -> str:
    """MODEL_CARD.md is in the run folder, holds each expected line, and its artifact table gives every file of
    artifacts.json with the parity figure `fidelity` as artifacts.json records it; returns the card."""
    card = (run / "MODEL_CARD.md").read_text(encoding="utf-8")
    for line in expected_lines:
        assert line in card, f"{line!r} not in the card:\n{card}"
    rows = card_artifact_rows(card)
    records = json.loads((run / "artifacts.json").read_text())
    for name, record in records.items():
        value = record["parity"][fidelity]
        assert rows[name.rstrip("/")][5] == f"{value:.{digits}f}", (name, rows.get(name))
    assert "## Pretrained weights" in card and f"--config {run.resolve() / 'config.yaml'}" in card
    return card
