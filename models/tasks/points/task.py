"""The points task: a 2-D point (x, y) in, a class out (the network `dlpipe run points` trains, like the Playground's).

Inputs are CSV files with columns x and y (a `label` column is what `dlpipe evaluate` scores; a `split`
column, as the Playground's export writes, limits evaluation to its `test` rows), or one point written
`x,y` on the command line. A server instance is `[x, y]`. The model takes float32 [N, 2] points and
computes its own features (`dlpipe.models.tasks.points.layers`), so every artifact takes raw points.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import ClassificationTask, InputSet, LabelledData, PreparedBatch

if TYPE_CHECKING:
    from dlpipe.models.artifacts import SideFiles

CSV_HELP = "a CSV with a header naming columns x and y (and label; split train/test optional)"


@dataclass(frozen=True)
class PointsPreprocessing:
    """Nothing to do outside the model: it takes raw points and computes `features` itself (recorded to inform)."""

    features: list[str] = field(default_factory=lambda: ["x", "y"])
    input: str = "float32 [N, 2]: x, y"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PointsPreprocessing":
        return cls(features=list(values.get("features") or ["x", "y"]))


@dataclass
class PointsTable:
    """A points CSV: coordinates, labels (None without a label column) and splits (None without a split column)."""

    points: np.ndarray  # float32 [N, 2]
    labels: list[str] | None
    splits: list[str] | None
    lines: list[int]  # each row's line number in the file, for messages


def parse_point(x: Any, y: Any) -> tuple[float, float] | None:
    """(x, y) as finite floats, or None."""
    try:
        point = float(x), float(y)
    except (TypeError, ValueError):
        return None
    return point if all(math.isfinite(v) for v in point) else None


def read_points_csv(path: str | Path, need_labels: bool = True) -> PointsTable:
    """Read a points CSV; any unusable row is a DataError naming the file and line (training data must be whole)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), f"no such file; give {CSV_HELP} (the Playground's export writes one)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in (reader.fieldnames or [])]
        wanted = ["x", "y"] + (["label"] if need_labels else [])
        if any(name not in columns for name in wanted):
            raise DataError(str(path), f"needs columns {', '.join(wanted)}; its header has {columns or 'nothing'}")
        points, labels, splits, lines = [], [], [], []
        for row in reader:
            row = {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}  # None: extras
            point = parse_point(row.get("x"), row.get("y"))
            if point is None:
                raise DataError(f"{path}:{reader.line_num}", f"x and y must be numbers. Received: {row.get('x')!r}, "
                                                             f"{row.get('y')!r}")
            if need_labels and not row.get("label"):
                raise DataError(f"{path}:{reader.line_num}", "the label is empty")
            if "split" in columns and row.get("split") not in ("train", "test"):
                raise DataError(f"{path}:{reader.line_num}", f"split must be train or test. Received: {row.get('split')!r}")
            points.append(point)
            labels.append(row.get("label", ""))
            splits.append(row.get("split", ""))
            lines.append(reader.line_num)
    if not points:
        raise DataError(str(path), f"has no rows; give {CSV_HELP}")
    return PointsTable(np.asarray(points, np.float32), labels if "label" in columns else None,
                       splits if "split" in columns else None, lines)


class PointsTask(ClassificationTask):
    """Points [N, 2] float32 in; class probabilities out."""

    name = "points"
    exporters_module = "dlpipe.models.tasks.points.export"
    description = "2-D points: x, y in, a class out"

    def preprocessing_from_dict(self, values: dict[str, Any]) -> PointsPreprocessing:
        return PointsPreprocessing.from_dict(values)

    def register_layers(self) -> None:
        import dlpipe.models.tasks.points.layers  # noqa: F401  (registers PointFeatures)

    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        """Each source is a CSV of points (every row, labelled or not) or one point `x,y`."""
        inputs = InputSet()
        for source in sources:
            if Path(source).suffix.lower() == ".csv" or Path(source).is_file():
                table = read_points_csv(source, need_labels=False)
                for line, point in zip(table.lines, table.points):
                    inputs.add(f"{source}:{line}", (float(point[0]), float(point[1])))
                continue
            point = parse_point(*(source.split(",") + [None])[:2]) if source.count(",") == 1 else None
            if point is None:
                inputs.add(str(source), error=f"is neither a point x,y nor {CSV_HELP}")
            else:
                inputs.add(str(source), point)
        return inputs

    def batches(self, inputs: InputSet, prep: PointsPreprocessing, batch_size: int) -> Iterator[PreparedBatch]:
        readable = [key for key in inputs.ids if key not in inputs.errors]
        size = max(1, batch_size)
        for start in range(0, len(readable), size):
            chunk = readable[start:start + size]
            yield PreparedBatch(chunk, self.stack([inputs.payloads[key] for key in chunk]), {})

    def prepare(self, raw: Any, prep: PointsPreprocessing) -> np.ndarray:
        point = parse_point(*raw) if isinstance(raw, (list, tuple)) and len(raw) == 2 else None
        if point is None:
            raise DataError("instance", f'this model takes points: send [x, y] numbers, e.g. {{"instances": [[0.5, -1]]}}. '
                                        f"Received: {raw!r}")
        return np.asarray(point, np.float32)

    def stack(self, items: Sequence[Any]) -> np.ndarray:
        return np.asarray([np.asarray(item, np.float32) for item in items], np.float32).reshape(len(items), 2)

    def labelled_data(self, path: Path) -> LabelledData:
        """A labelled points CSV; with a split column, its test rows only (the train rows taught the model)."""
        table = read_points_csv(path)
        inputs, labels = InputSet(), []
        for index, (line, point) in enumerate(zip(table.lines, table.points)):
            if table.splits is None or table.splits[index] == "test":
                inputs.add(f"{path}:{line}", (float(point[0]), float(point[1])))
                labels.append(table.labels[index])
        return LabelledData(inputs, labels, [])

    def row_fields(self, payload: Any) -> dict[str, Any]:
        return {"x": payload[0], "y": payload[1]}

    def keras_feed(self, prep: PointsPreprocessing, side: "SideFiles") -> Callable[[Any], Any]:
        return lambda batch: np.asarray(batch, np.float32)

    def savedmodel_predict(self, loaded: Any, prep: PointsPreprocessing, side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_default" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_default signature; export it again with dlpipe export")
        signature = loaded.signatures["serving_default"]
        return lambda batch: signature(points=tf.constant(np.asarray(batch, np.float32)))["probabilities"].numpy()

    def tflite_feed(self, prep: PointsPreprocessing, side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        return lambda batch, details: [np.asarray(batch, np.float32)]


TASK = PointsTask
