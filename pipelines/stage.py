"""The stage contract and the context that stages pass along.

A stage is a small object built from its own config dataclass; `run(ctx)`
reads what earlier stages left in the context, adds its own products and
returns a one-line summary for the progress log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from dlpipe.errors import DlpipeError


@dataclass
class RunContext:
    """Everything a run has produced so far; stages read and extend it."""

    out_dir: Path
    seed: int
    config: Any  # ResolvedConfig
    resume: bool = False
    echo: Callable[[str], None] = print
    extra_callbacks: list[Any] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    # products of the stages, in pipeline order
    class_names: list[str] = field(default_factory=list)
    train_files: tuple[list[str], list[int]] = field(default_factory=lambda: ([], []))
    val_files: tuple[list[str], list[int]] = field(default_factory=lambda: ([], []))
    preprocessing: Any = None
    train_data: Any = None
    val_data: Any = None
    augmenter: Any = None
    model: Any = None
    training_defaults: dict[str, Any] = field(default_factory=dict)  # what the model stage recommends
    backbone_spec: Any = None
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def need(self, attribute: str, stage: str) -> Any:
        """A product of an earlier stage, or a clear error saying which stage is missing."""
        value = getattr(self, attribute)
        if value is None or value == [] or value == {}:
            raise DlpipeError(f"stage needs '{attribute}', which the '{stage}' stage produces; add it to `stages`")
        return value


class Stage(ABC):
    """Base class of every stage: `config_cls` holds its options, `run` does the work."""

    name: ClassVar[str]
    config_cls: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def run(self, ctx: RunContext) -> str:
        """Do the stage's work on `ctx`; return a one-line summary."""
