"""sentiment's recipes: the epochs and batch measured for the pretrained encoders.

The dataclass defaults (20 epochs, early stopping) are for the small models trained from pretrained vectors. A
pretrained encoder is fine-tuned for a few epochs: MPNet's 0.962 / 0.964 across review sites came from 3 epochs
at batch 16 (20 planned epochs of 430-470 s each would stop only by early stopping, after 29 minutes or more), and
MiniLM's 0.906 / 0.918 from 3 epochs at batch 32 (BENCHMARKS.md, "Issue 14, text"). An explicit --set always wins.
"""

from __future__ import annotations

from dlpipe.pipelines.recipes import Recipe

MEASURED = "BENCHMARKS.md, Issue 14, text"

RECIPES = (
    Recipe("minilm", lambda c: c["model.architecture"] == "minilm", {"train": {"epochs": 3}},
           "3 epochs at 5e-5, batch 32: 0.906 / 0.918 across review sites (" + MEASURED + ")"),
    Recipe("mpnet", lambda c: c["model.architecture"] == "mpnet", {"train": {"epochs": 3, "batch_size": 16}},
           "3 epochs at 2e-5, batch 16: 0.962 / 0.964 across review sites (" + MEASURED + ")"),
)
