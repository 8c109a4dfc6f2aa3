"""gan: a DCGAN generating images like a built-in dataset's, measured by a Fréchet distance.

The whole GAN pipeline (load, model, train, export) is in `stages`; its training keeps its own adversarial
loop (`dlpipe.models.dcgan.train_gan`), resumable per epoch.
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
