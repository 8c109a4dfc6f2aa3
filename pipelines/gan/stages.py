"""Stages of the `gan` pipeline: load a built-in dataset, build a DCGAN, train it (resumable), export the generator.

Listed by `dlpipe.pipelines.gan`. Training is measured by the Fréchet distance of generated to
real test images in a small classifier's feature space, against the floor of
two disjoint real halves (see `dlpipe.models.frechet`). The generator is exported by the shared
export stage as the `gan` task's artifacts (`dlpipe.models.tasks.gan`: seeds in, images out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, RunContext, Stage
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage
from dlpipe.pipelines.training.config import distribute_option, distribute_scaling_option

# a generator's validation inputs are seeds: every export is checked on the first export.parity_sample of them
VALIDATION_SEEDS = 1000


@dataclass(frozen=True)
class GanLoadConfig:
    """Which built-in dataset, and how much of it."""

    path: str | None = option("builtin:fashion-mnist", "a built-in dataset, builtin:NAME (fashion-mnist, mnist-5k, digits, mnist) (--data)")
    limit: int | None = option(None, "use at most this many images per split (quick trials)")

    def __post_init__(self) -> None:
        require(self.limit is None or self.limit > 1, "limit", f"must be at least 2. Received: {self.limit}")


class GanLoadStage(Stage):
    """Load the images of a built-in dataset with its fixed split; labels only train the Fréchet feature model.

    The generator's own inputs are seeds: the validation examples are seeds 0, 1, ..., on which the
    export stage (and a later `dlpipe export RUN`) checks each artifact against the Keras generator.
    """

    config_cls = GanLoadConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.data.builtin_datasets import is_builtin, load_builtin
        from dlpipe.errors import ConfigError

        cfg = self.config
        if not cfg.path or not is_builtin(cfg.path):
            raise ConfigError("load.path", f"the gan pipeline reads a built-in dataset; pass --data builtin:NAME. "
                                           f"Received: {cfg.path!r}")
        data = load_builtin(cfg.path, cfg.limit)
        ctx.class_names = list(data.class_names)
        ctx.arrays = data
        ctx.val = Examples(inputs=list(range(VALIDATION_SEEDS)))
        ctx.report["data"] = {"dataset": data.name, "split": data.split, "train_images": len(data.train_images),
                              "test_images": len(data.test_images), "image_shape": list(data.image_shape)}
        return f"{data.name}: {len(data.train_images)} train / {len(data.test_images)} test images {data.image_shape}"


@dataclass(frozen=True)
class GanModelConfig:
    """The generator and discriminator sizes."""

    latent_dim: int = option(64, "size of the generator's Gaussian input")
    filters: int = option(32, "channels of the discriminator's first conv (the generator mirrors it)")
    steps: int = option(2, "stride-2 layers each side; the image size must be a multiple of 2**steps")
    image_size: int | None = option(None, "square size the images are resized to; default: the dataset's own")

    def __post_init__(self) -> None:
        require(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        require(self.filters >= 1, "filters", "must be at least 1")
        require(self.steps >= 1, "steps", "must be at least 1")
        require(self.image_size is None or self.image_size >= 8, "image_size", "must be at least 8")


class GanModelStage(Stage):
    """Build a compiled DCGAN for the loaded images' size; its generator takes the gan task's latent vectors."""

    config_cls = GanModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.errors import ConfigError
        from dlpipe.models.dcgan import make_dcgan
        from dlpipe.models.tasks.gan import GanPreprocessing

        cfg = self.config
        images = ctx.need("arrays", "load").train_images
        size = cfg.image_size or images.shape[1]
        try:
            ctx.model = make_dcgan(size, 1, cfg.latent_dim, cfg.filters, cfg.steps, seed=ctx.seed)
        except ValueError as error:
            raise ConfigError("model.image_size", str(error)) from None
        ctx.preprocessing = GanPreprocessing(latent_dim=cfg.latent_dim)
        gan = ctx.model
        return (f"DCGAN {size}x{size}: generator {gan.generator.count_params():,}, "
                f"discriminator {gan.discriminator.count_params():,} parameters")


@dataclass(frozen=True)
class GanTrainConfig:
    """Adversarial training and its Fréchet-distance measurement."""

    epochs: int = option(5, "training epochs in total (a resumed run continues to this many)")
    batch_size: int = option(64, "real images per step (each step also generates as many); with train.distribute "
                                     "the global batch, split over the replicas")
    learning_rate: float = option(2e-4, "Adam learning rate of both networks (beta_1 0.5)")
    feature_epochs: int = option(2, "epochs of the classifier whose features measure the Fréchet distance")
    fid_samples: int = option(1000, "generated and real images compared after each epoch")
    progress: Literal["auto", "bar", "epochs", "none"] = option("auto", "a progress bar on a terminal, epoch lines in logs")
    distribute: Literal["none", "auto", "mirrored", "multi_worker"] = distribute_option()
    distribute_scaling: Literal["none", "linear"] = distribute_scaling_option()

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1. Received: {self.epochs}")
        require(self.batch_size >= 2, "batch_size", "must be at least 2")
        require(self.learning_rate > 0, "learning_rate", "must be > 0")
        require(self.feature_epochs >= 1, "feature_epochs", "must be at least 1")
        require(self.fid_samples >= 10, "fid_samples", "must be at least 10")


class GanTrainStage(Stage):
    """Train adversarially; every epoch is backed up, so `--resume` continues a killed run."""

    config_cls = GanTrainConfig

    def run(self, ctx: RunContext) -> str:
        import keras
        import numpy as np

        from dlpipe.models import dcgan, frechet
        from dlpipe.pipelines.gan.training import train_gan
        from dlpipe.pipelines.training.distribute import scale, sharded
        from dlpipe.pipelines.training.keras_fit import fit_verbosity

        cfg = self.config
        gan = ctx.need("model", "model")
        data = ctx.need("arrays", "load")
        images, labels, test_images = data.train_images, data.train_labels, data.test_images
        rate, batch = cfg.learning_rate * scale(cfg), cfg.batch_size * scale(cfg)  # distribute_scaling=linear: x R
        gan.compile(keras.optimizers.Adam(rate, beta_1=0.5), keras.optimizers.Adam(rate, beta_1=0.5))
        size = gan.generator.output_shape[1]
        images, test_images = _resized(images, size), _resized(test_images, size)
        features = frechet.train_feature_model(images, labels, epochs=cfg.feature_epochs, seed=ctx.seed)
        count = min(cfg.fid_samples, len(test_images) // 3)
        order = np.random.default_rng(ctx.seed).permutation(len(test_images))
        reference = test_images[order[:count]]
        floor = frechet.real_floor(features, test_images[order[count:3 * count]], ctx.seed)
        monitor = frechet.FrechetMonitor(features, reference, count, grid_dir=ctx.out_dir / "samples")
        history = train_gan(gan, sharded(dcgan.gan_dataset(images, batch, ctx.seed)), cfg.epochs, ctx.out_dir,
                            [monitor, *ctx.extra_callbacks], verbose=fit_verbosity(cfg.progress))
        ctx.history = history
        ctx.metrics = {"fid_per_epoch": history.get("fid", []), "fid_floor_real_vs_real": floor,
                       "fid_samples": count, "feature_model": "conv32-conv64-dense128 classifier on the train images"}
        last = history.get("fid", [float("nan")])[-1]
        return f"{len(history.get('g_loss', []))} epochs, Fréchet distance {last:.2f} (real-vs-real floor {floor:.2f})"


def _resized(images, size: int):
    """uint8 (N, H, W) images at `size` x `size` (unchanged when they already are)."""
    import numpy as np
    import tensorflow as tf

    if images.shape[1:3] == (size, size):
        return images
    resized = tf.image.resize(images[..., None].astype(np.float32), [size, size], antialias=True)
    return np.clip(np.rint(resized.numpy()[..., 0]), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class GanExportConfig(ExportConfig):
    """Which artifacts of the generator to write (each takes seeds' latent vectors), and the sample grid."""

    formats: list[str] = option(["keras", "savedmodel"], "artifacts of the generator: keras, savedmodel, tflite, "
                                "tflite-float16, tflite-dynamic (each takes latent vectors; dlpipe predict RUN SEED...)")
    parity_sample: int = option(100, "seeds each artifact's images are checked on against the Keras generator (0: none)")
    samples: int = option(64, "images in the sample grid samples.png (seeds 0 .. samples-1)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.samples >= 1, "samples", "must be at least 1")
        for name in self.formats:
            require(name not in ("web", "tflite-int8"), "formats", f"{name} is not available for a generator; choose "
                                                                   "from keras, savedmodel, tflite, tflite-float16, tflite-dynamic")


class GanExportStage(ExportStage):
    """The shared export of the generator (artifacts with side files and parity), then samples.png and metrics.json."""

    config_cls = GanExportConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe import atomic
        from dlpipe.models.dcgan import save_sample_grid

        summary = super().run(ctx)
        grid = save_sample_grid(ctx.need("model", "model"), ctx.out_dir / "samples.png", count=self.config.samples)
        ctx.artifacts[grid.name] = str(grid)
        atomic.write_json(ctx.out_dir / "metrics.json", ctx.metrics)
        return f"{summary}, {grid.name}, metrics.json"

    def exported_model(self, ctx: RunContext) -> Any:
        """The generator alone: what a user runs (the discriminator only served training)."""
        return ctx.need("model", "model").generator
