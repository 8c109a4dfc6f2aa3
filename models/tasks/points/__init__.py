"""The points task's runtime half: `task` (x, y in, a class out; CSV files of points), `layers` (the Playground's
features inside the model, and its MLP) and `export` (.keras, SavedModel, TFLite taking float32 [N, 2] points).
"""

from dlpipe.models.tasks.points.task import TASK, PointsPreprocessing, PointsTask, PointsTable, read_points_csv

__all__ = ["TASK", "PointsPreprocessing", "PointsTable", "PointsTask", "read_points_csv"]
