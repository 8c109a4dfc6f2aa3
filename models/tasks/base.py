"""The task contract: what a modality must say so that every consumer can stay modality-free.

Consumers (the batch job, the server, `dlpipe evaluate`, export parity) only
ever call these methods; a task never imports them back.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Protocol, Sequence

import numpy as np

from dlpipe.errors import DataError

if TYPE_CHECKING:
    from dlpipe.models.artifacts import SideFiles


@dataclass
class InputSet:
    """The inputs of a batch job, in order: an id per input, what to read for it, or why it cannot be read.

    Images: the id is the path and the payload the path; text: the id is
    "file:line" and the payload the line's text.
    """

    ids: list[str] = field(default_factory=list)
    payloads: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, payload: Any = None, error: str | None = None) -> None:
        self.ids.append(key)
        if error is not None:
            self.errors[key] = error
        else:
            self.payloads[key] = payload

    def subset(self, keys: Sequence[str]) -> "InputSet":
        """The same inputs restricted to `keys` (e.g. what a resumed job still has to do)."""
        out = InputSet()
        for key in keys:
            out.add(key, self.payloads.get(key), self.errors.get(key))
        return out


@dataclass
class PreparedBatch:
    """One chunk of a job: every id of the chunk in input order, the model batch of the readable ones, the errors."""

    ids: list[str]
    batch: Any
    errors: dict[str, str]

    @property
    def readable(self) -> list[str]:
        return [key for key in self.ids if key not in self.errors]


@dataclass
class LabelledData:
    """Labelled examples to score an artifact on: the inputs, their label names, and what was skipped."""

    inputs: InputSet
    labels: list[Any]  # a label name per input; a mask file (segmentation); a list of boxes (detection)
    skipped: list[dict[str, str]]


class Task(ABC):
    """One modality. Instances are stateless; preprocessing specs are passed in."""

    name: ClassVar[str]
    description: ClassVar[str]
    exporters_module: ClassVar[str]  # the module that registers this task's export formats (imported on first export)
    headline_metric: ClassVar[str] = "accuracy"  # the key of `score`'s report an export's parity compares

    def with_options(self, **options: Any) -> "Task":
        """This task with output options set (e.g. a detector's score threshold); None means "as it is".

        A task that takes none refuses any given option, naming it, so a CLI flag meant for another task
        fails clearly instead of being ignored.
        """
        given = [key for key, value in options.items() if value is not None]
        if given:
            from dlpipe.errors import DataError

            raise DataError("--" + given[0].replace("_", "-"), f"does not apply to {self.name} models ({self.description})")
        return self

    def batches_in_flight(self) -> int:
        """How many batches a batch job runs through the model at once, each on its own replica of the runtime
        (the cores split between them): two by default, so that what a runtime does in Python before its model
        runs (a text model's tokenisation) overlaps the other batch's inference."""
        return 2

    def without_tensorflow(self) -> "Task":
        """This task preparing its inputs without TensorFlow, for a runtime that needs none (a .tflite): as it is
        by default (strings, seeds); image tasks decode in NumPy/Pillow (`dlpipe.data.numpy_preprocess`)."""
        return self

    # --- preprocessing spec -------------------------------------------------------------------
    @abstractmethod
    def preprocessing_from_dict(self, values: dict[str, Any]) -> Any:
        """The task's preprocessing dataclass from a preprocessing.json mapping (unknown keys ignored)."""

    def side_files_for(self, model: Any, prep: Any) -> dict[str, Path]:
        """Extra files every artifact of `model` must carry (name -> path), e.g. a tokenizer vocabulary."""
        return {}

    # --- raw inputs ---------------------------------------------------------------------------
    @abstractmethod
    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        """Expand command-line inputs (files, folders, lists) into the inputs of a batch job."""

    @abstractmethod
    def batches(self, inputs: InputSet, prep: Any, batch_size: int) -> Iterator[PreparedBatch]:
        """The inputs as model batches, in input order, reading in parallel where that pays."""

    @abstractmethod
    def prepare(self, raw: Any, prep: Any) -> Any:
        """One request instance (bytes, a string) -> one model input; DataError("instance", reason) if unusable."""

    @abstractmethod
    def stack(self, items: Sequence[Any]) -> Any:
        """Prepared items -> one model batch."""

    @abstractmethod
    def labelled_data(self, path: Path) -> LabelledData:
        """Labelled examples for `dlpipe evaluate` (a class-per-folder directory, a labelled text file, ...)."""

    def label_name(self, label: Any, class_names: list[str]) -> Any:
        """A training label (a class index) as `score` takes it (its name)."""
        return class_names[label]

    def check_labels(self, labels: Sequence[str], class_names: list[str], data: str) -> None:
        """Refuse labels the model cannot score (label names by default; a task whose labels are files checks them
        in `score`)."""
        unknown = sorted(set(labels) - set(class_names))
        if unknown:
            raise DataError(data, f"labels {unknown} are not among the model's labels {class_names}")

    # --- how each artifact format is fed ------------------------------------------------------
    @abstractmethod
    def keras_feed(self, prep: Any, side: "SideFiles") -> Callable[[Any], Any]:
        """A model batch -> what the Keras model's `predict_on_batch` takes."""

    def register_layers(self) -> None:
        """Import the module that registers this task's own Keras layers, before a `.keras` file loads; none by
        default (the shared layers in `dlpipe.models.layers` are always registered)."""

    def before_savedmodel_load(self, prep: Any) -> None:
        """Import what a SavedModel of this task needs registered before loading (custom ops); nothing by default."""

    @abstractmethod
    def savedmodel_predict(self, loaded: Any, prep: Any, side: "SideFiles") -> Callable[[Any], np.ndarray]:
        """A function batch -> outputs through the SavedModel's signature for model batches."""

    @abstractmethod
    def tflite_feed(self, prep: Any, side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        """A function (batch, the interpreter's input details) -> arrays in the interpreter's input order."""

    def tflite_output(self, arrays: list[np.ndarray], details: list[dict[str, Any]]) -> np.ndarray:
        """The interpreter's outputs (dequantised, in its output order) -> the model's output; the first by default."""
        return arrays[0]

    def finish(self, batch: Any, outputs: np.ndarray) -> np.ndarray:
        """Outputs of any format, completed with what the batch knows (e.g. each photo's size); as they are by default."""
        return outputs

    def row_fields(self, payload: Any) -> dict[str, Any]:
        """Extra fields a batch-job row shows about its input (e.g. the text itself); none by default."""
        return {}

    def output_writer(self, out: Path | None, inputs: InputSet, draw: Path | None = None) -> "OutputWriter | None":
        """What a batch job writes per input besides its rows (e.g. mask PNGs, drawn boxes), or None: rows only.

        `out` is the user's `--out` (None: rows are printed), `draw` their `--draw DIR`; the writer says where
        the rows go (`rows_file`). By default there is nothing to write, and `--draw` is refused.
        """
        if draw is not None:
            raise DataError("--draw", f"{self.name} models have nothing to draw; it is for models that locate objects")
        return None

    # --- outputs ------------------------------------------------------------------------------
    @abstractmethod
    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        """One output row -> the fields of a result (batch-job row, HTTP answer)."""

    def console_text(self, row: dict[str, Any]) -> str:
        """How `dlpipe predict` prints an answered row after its input's name: the top labels and scores by default,
        else the row's own fields (a task whose answer is not a ranking, e.g. a regression)."""
        if "top" in row:
            return ", ".join(f"{item['label']} {item['score']:.3f}" for item in row["top"])
        return json.dumps({key: value for key, value in row.items() if key not in ("input", "error")})

    def answer(self, output: np.ndarray, class_names: list[str], top_k: int) -> dict[str, Any]:
        """One output row -> the fields of an HTTP answer: `describe`'s, with the raw output as probabilities."""
        return {**self.describe(output, class_names, top_k), "probabilities": [float(p) for p in output]}

    @abstractmethod
    def score(self, labels: Sequence[Any], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        """Metrics of outputs against `labelled_data`'s labels."""

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """`score`'s report as the lines `dlpipe evaluate` prints: the headline with its interval, then per class.
        By default one line of the report's numbers; tasks say what matters most first."""
        return [", ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                          for key, value in report.items() if isinstance(value, (int, float)) and not isinstance(value, bool))]

    @abstractmethod
    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """How closely an exported artifact's outputs follow the Keras model's on the same batch."""


def writer_folders(out: Path, rows_name: str, what: str) -> tuple[Path, Path]:
    """(folder for an output writer's files, its rows file) from a batch job's `--out`: `--out FOLDER` puts the
    rows in FOLDER/`rows_name`, `--out NAME.jsonl` (or .csv) puts them there and the files in the folder NAME.
    `what` says what the files are, for the error when FOLDER is a file."""
    folder, rows_file = (out.with_suffix(""), out) if out.suffix.lower() in (".jsonl", ".csv") else (out, out / rows_name)
    if folder.exists() and not folder.is_dir():
        raise DataError(str(folder), f"is a file; a {what} job writes its files into a folder: give --out FOLDER")
    return folder, rows_file


class OutputWriter(Protocol):
    """Writes the files of one input of a batch job (after its outputs exist) and names them in its row."""

    rows_file: Path | None  # where the job's rows go (None: printed)

    def write(self, key: str, payload: Any, output: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
        """Write the input's files (atomically) from its output and its row's fields (`describe`'s); return the
        row fields that name them."""


def _unknown_apart(report: dict[str, Any]) -> dict[str, Any]:
    """A model with the unknown answer scored on data of its classes: the labelled classes' macro averages
    (unknown, no example's label, would add a zero), and how many inputs it answered unknown (each counted wrong)."""
    from dlpipe.models.unknown import UNKNOWN_LABEL

    unknown = report["per_class"].get(UNKNOWN_LABEL)
    if unknown is None or unknown["support"]:
        return report
    column = report["class_names"].index(UNKNOWN_LABEL)
    labelled = [scores for name, scores in report["per_class"].items() if name != UNKNOWN_LABEL]
    for key in ("precision", "recall", "f1"):
        report[f"macro_{key}"] = float(np.mean([scores[key] for scores in labelled]))
    report["answered_unknown"] = int(sum(row[column] for row in report["confusion_matrix"]))
    return report


class ClassificationTask(Task):
    """Outputs are class probabilities (N, classes): top-k answers, accuracy metrics, top-1 agreement."""

    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        top = top_labels(output, class_names, top_k, digits)
        return {**top[0], "top": top}

    def score(self, labels: Sequence[str], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        from dlpipe.models.metrics import classification_report

        index = {name: i for i, name in enumerate(class_names)}
        report = classification_report([index[name] for name in labels], np.asarray(outputs).argmax(axis=1).tolist(),
                                       class_names)
        return _unknown_apart(report)

    def summary_lines(self, report: dict[str, Any]) -> list[str]:
        """`score`'s report as the lines `dlpipe evaluate` prints: accuracy with its interval, then each class."""
        low, high = report["accuracy_interval"]
        lines = [f"accuracy {report['accuracy']:.4f} (95% interval {low:.3f}-{high:.3f}) on {report['count']} inputs, "
                 f"macro F1 {report['macro_f1']:.4f}"]
        lines += [f"  {name}: precision {scores['precision']:.3f} recall {scores['recall']:.3f} f1 {scores['f1']:.3f}"
                  for name, scores in report["per_class"].items()
                  if "answered_unknown" not in report or name != report["class_names"][-1]]
        if "answered_unknown" in report:
            lines.append(f"  answered unknown: {report['answered_unknown']} of {report['count']} (counted wrong)")
        return lines

    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
        if not len(reference):  # nothing compared: unchecked (None), never faithful
            return {"top1_agreement": None, "max_abs_diff": None, "count": 0}
        return {"top1_agreement": float(np.mean(reference.argmax(axis=1) == outputs.argmax(axis=1))),
                "max_abs_diff": float(np.max(np.abs(reference - outputs))) if reference.size else 0.0,
                "count": int(len(reference))}


def top_labels(probabilities: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> list[dict[str, Any]]:
    """The `top_k` (at least 1) most likely classes as [{"label", "score"}], best first; scores rounded if `digits`."""
    order = np.argsort(-probabilities)[: max(1, min(top_k, len(class_names)))]
    scores = [float(probabilities[i]) for i in order]
    return [{"label": class_names[i], "score": round(s, digits) if digits is not None else s} for i, s in zip(order, scores)]


