"""The stage contract, the stage registry and the run context through which stages hand each other data.

A stage is a small object built from its own config dataclass (`config_cls`);
`run(ctx)` reads the typed products earlier stages left in the context, adds
its own and returns a one-line summary. Stages never read another stage's
config. A task's pipeline package lists its stages by role, in run order
(`dlpipe.pipelines.catalog.PipelineSpec`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from dlpipe.errors import DlpipeError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from dlpipe.data.builtin_datasets import ArrayDataset
    from dlpipe.models.tasks import Task
    from dlpipe.pipelines.config import ResolvedConfig


@dataclass
class Examples:
    """Inputs (image paths, texts) and their label indices (or label files, such as masks), in the same order."""

    inputs: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # empty when the label is a file (targets)
    targets: list[str] = field(default_factory=list)  # per-input label files, e.g. segmentation masks
    # per-input annotated boxes: detection's data.box_annotations.BoxLabel (pixels), multi-label's data.multilabel.Region
    objects: list[list[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class ModelInput:
    """What the model stage says the model takes: the square input size and the backbone's resize recipe."""

    image_size: int
    resize: str
    inference_size: int | None = None  # a convolutional network trained at image_size, evaluated and exported at this


@dataclass(frozen=True)
class FineTuning:
    """The pretrained, frozen part of a model that the train stage may unfreeze block by block."""

    layer: str
    block_pattern: str
    probe: bool = False  # model.mode=probe: keep it frozen and fit a logistic-regression head on its features
    # its output is a pooled feature vector under a softmax head, so a linear probe can stand in for the head
    # (image backbones); text embeddings and segmentation encoders are not
    probe_features: bool = False
    source: str = ""  # what computes its features (backbone, weights, input): the key of cached features
    batch_norm: bool = False  # fine-tuning also trains the batch-norm scales and offsets (statistics stay frozen)


@dataclass
class TrainingDefaults:
    """What the model stage recommends to the train stage when its config leaves a value unset (None: no advice)."""

    optimizer: str | None = None
    learning_rate: float | None = None
    warmup_fraction: float | None = None


@dataclass
class RunContext:
    """Everything a run has produced so far; stages read and extend it."""

    out_dir: Path
    seed: int
    config: "ResolvedConfig"
    task: "Task | None"  # the pipeline's runtime task; None only for a task no runtime registers (none of dlpipe's own)
    resume: bool = False
    echo: Callable[[str], None] = print
    extra_callbacks: list["keras.callbacks.Callback"] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    # products of the stages, in pipeline order
    class_names: list[str] = field(default_factory=list)
    train: Examples = field(default_factory=Examples)
    val: Examples = field(default_factory=Examples)
    arrays: "ArrayDataset | None" = None  # in-memory images of a built-in dataset, with its fixed split
    model_input: ModelInput | None = None
    preprocessing: Any = None  # the task's preprocessing dataclass (ImagePreprocessing, TextPreprocessing)
    train_data: "tf.data.Dataset | None" = None
    val_data: "tf.data.Dataset | None" = None
    augmenter: "keras.Sequential | None" = None
    model: "keras.Model | None" = None
    # a wider network sharing the model's layers that the train stage fits instead (a detector, box head included,
    # behind the multi-label classifier read off its heat map); None: the model itself
    training_network: "keras.Model | None" = None
    fine_tuning: FineTuning | None = None
    training_defaults: TrainingDefaults = field(default_factory=TrainingDefaults)
    history: dict[str, Any] = field(default_factory=dict)
    selected_weights: Path | None = None  # train.refit: the model chosen on the validation split, before the refit
    cache_dir: Path | None = None  # where backbone features are cached (shared by the folds of a cross-validation)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def record_choice(self, section: str, **values: Any) -> None:
        """A stage settled an option the config left open (e.g. learning_rate: auto): the run's config becomes the
        resolved one with that value, saved to config.yaml, so the run can be repeated as it ran."""
        import dataclasses

        from dlpipe import atomic

        chosen = dataclasses.replace(self.config[section], **values)
        self.config = dataclasses.replace(self.config, sections={**self.config.sections, section: chosen})
        atomic.write_text(self.out_dir / "config.yaml", self.config.to_yaml())

    def need(self, attribute: str, stage: str) -> Any:
        """A product of an earlier stage, or a clear error saying which stage is missing."""
        value = getattr(self, attribute)
        if value is None or (isinstance(value, (list, dict, Examples)) and not len(value)):
            raise DlpipeError(f"stage needs '{attribute}', which the '{stage}' stage produces; add it to `stages`")
        return value


class Stage(ABC):
    """Base class of every stage: `config_cls` holds its options, `run` does the work."""

    config_cls: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def run(self, ctx: RunContext) -> str:
        """Do the stage's work on `ctx`; return a one-line summary."""

    def preflight(self) -> None:
        """Cheap checks of the stage's inputs (class names, a text file's encoding), run before TensorFlow is
        imported and any stage runs, so bad data is one line in a second, not after minutes; raise DlpipeError."""

    @classmethod
    def option_notes(cls, config: Any) -> list[str]:
        """Extra lines `dlpipe config` prints under the stage's options (e.g. what each choice costs)."""
        return []
