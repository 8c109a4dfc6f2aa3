"""points: the Playground's network on a CSV of 2-D points (x, y, label), trained with plain SGD.

The training half of the points task (its runtime half is `dlpipe.models.tasks.points`: x, y in, a class
out). `dlpipe playground`'s "Export as dlpipe config" writes points.csv and points.yaml for
`dlpipe run points --data points.csv --config points.yaml`.
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.points.stages import PointsExportStage, PointsLoadStage, PointsModelStage, PointsTrainStage

PIPELINE = PipelineSpec(
    name="points",
    description="the Playground's network on a CSV of 2-D points (x, y, label; split optional), plain SGD",
    task="points",
    stages=(("load", PointsLoadStage), ("model", PointsModelStage), ("train", PointsTrainStage),
            ("export", PointsExportStage)),
)
