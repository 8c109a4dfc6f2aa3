"""gan: a DCGAN generating images like a built-in dataset's, measured by a Fréchet distance.

The training half of the gan task (its runtime half is `dlpipe.models.tasks.gan`: seeds in, generated
images out). The stages (load, model, train, export) are in `stages`; the DCGAN trains through its own
`train_step` with the shared core's checkpoints, history and resume (`training.train_gan`), and the
generator is exported by the shared export stage with the same artifact bundle as every task, plus
samples.png and metrics.json (the Fréchet distance per epoch).
"""

from dlpipe.pipelines.catalog import PipelineSpec
from dlpipe.pipelines.gan.stages import GanExportStage, GanLoadStage, GanModelStage, GanTrainStage

PIPELINE = PipelineSpec(
    name="gan",
    description="a DCGAN generating images like a built-in dataset's (--data builtin:fashion-mnist), measured by a "
                "Fréchet distance",
    task="gan",
    stages=(("load", GanLoadStage), ("model", GanModelStage), ("train", GanTrainStage), ("export", GanExportStage)),
)
