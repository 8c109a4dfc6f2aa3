"""Stages of the `points` pipeline: read a points CSV, build the Playground's network, train it with plain SGD, export.

Listed by `dlpipe.pipelines.points`. The network and its training mirror `dlpipe playground` (features
inside the model, dense layers with Glorot-uniform kernels, a softmax over the classes, cross-entropy,
L1/L2 on the kernels, SGD without momentum), so its exported config trains the same network here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, RunContext, Stage
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage
from dlpipe.pipelines.training.config import distribute_option, distribute_scaling_option

FEATURES = ("x", "y", "x2", "y2", "xy", "sinx", "siny")  # as dlpipe.models.tasks.points.layers (no TF imported here)


@dataclass(frozen=True)
class PointsLoadConfig:
    """The CSV of points, and how to split it when it has no split column."""

    path: str | None = option(None, "a CSV with columns x, y, label (and split: train/test), e.g. the Playground's "
                                    "export (--data)")
    test_fraction: float = option(0.5, "share of the points held out for testing when the CSV has no split column")

    def __post_init__(self) -> None:
        require(0 < self.test_fraction < 1, "test_fraction", f"must be between 0 and 1. Received: {self.test_fraction}")


class PointsLoadStage(Stage):
    """Read the CSV; its split column (else a seeded shuffle) gives the train and test points."""

    config_cls = PointsLoadConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe.errors import ConfigError, DataError
        from dlpipe.models.tasks.points import read_points_csv

        if not self.config.path:
            raise ConfigError("load.path", "give the points CSV: dlpipe run points --data points.csv")
        table = read_points_csv(self.config.path)
        ctx.class_names = sorted(set(table.labels))
        if len(ctx.class_names) < 2:
            raise DataError(self.config.path, f"needs at least two labels to learn from. Received: {ctx.class_names}")
        if table.splits is not None:
            test = np.asarray([split == "test" for split in table.splits])
        else:
            order = np.random.default_rng(ctx.seed).permutation(len(table.points))
            test = np.zeros(len(table.points), bool)
            test[order[:max(1, round(len(order) * self.config.test_fraction))]] = True
        if test.all() or not test.any():
            raise DataError(self.config.path, "needs both train and test points (its split column has only one kind)")
        index = {name: i for i, name in enumerate(ctx.class_names)}
        for examples, rows in ((ctx.train, np.flatnonzero(~test)), (ctx.val, np.flatnonzero(test))):
            examples.inputs = [(float(table.points[i, 0]), float(table.points[i, 1])) for i in rows]
            examples.labels = [index[table.labels[i]] for i in rows]
        ctx.report["data"] = {"path": self.config.path, "classes": ctx.class_names, "train_points": len(ctx.train),
                              "test_points": len(ctx.val), "split": "column" if table.splits is not None else "seeded"}
        return f"{len(ctx.train)} train / {len(ctx.val)} test points, classes {ctx.class_names}"


@dataclass(frozen=True)
class PointsModelConfig:
    """The network, as the Playground sets it."""

    features: list[str] = option(["x", "y"], "inputs computed from each point: " + ", ".join(FEATURES))
    layers: list[int] = option([4, 2], "neurons per hidden layer ([] : none)")
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = option("tanh", "activation of the hidden layers")
    l1: float = option(0.0, "L1 penalty rate on every kernel")
    l2: float = option(0.0, "L2 penalty rate on every kernel")

    def __post_init__(self) -> None:
        require(bool(self.features) and all(name in FEATURES for name in self.features), "features",
                f"choose one or more of {', '.join(FEATURES)}. Received: {self.features}")
        require(all(units >= 1 for units in self.layers), "layers", "every layer needs at least 1 neuron")
        require(self.l1 >= 0 and self.l2 >= 0, "l1", "penalty rates must be >= 0")


class PointsModelStage(Stage):
    """Build the network; it takes raw points and computes its features itself."""

    config_cls = PointsModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.tasks.points import PointsPreprocessing
        from dlpipe.models.tasks.points.layers import make_points_mlp

        cfg = self.config
        ctx.model = make_points_mlp(cfg.features, cfg.layers, cfg.activation, cfg.l1, cfg.l2,
                                    len(ctx.class_names) or 2, ctx.seed)
        ctx.preprocessing = PointsPreprocessing(features=list(cfg.features))
        shape = " -> ".join(map(str, [len(cfg.features), *cfg.layers, len(ctx.class_names)]))
        return f"MLP {shape} ({cfg.activation}), {ctx.model.count_params():,} parameters"


@dataclass(frozen=True)
class PointsTrainConfig:
    """Plain SGD, as the Playground trains."""

    epochs: int = option(100, "passes over the train points")
    batch_size: int = option(10, "points per step; with train.distribute the global batch, split over the replicas")
    learning_rate: float = option(0.03, "SGD learning rate (no momentum)")
    progress: Literal["auto", "bar", "epochs", "none"] = option("none", "a progress bar on a terminal, epoch lines in logs")
    distribute: Literal["none", "auto", "mirrored", "multi_worker"] = distribute_option()
    distribute_scaling: Literal["none", "linear"] = distribute_scaling_option()

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1. Received: {self.epochs}")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.learning_rate > 0, "learning_rate", "must be > 0")


class PointsTrainStage(Stage):
    """Fit with SGD, then measure train and test loss (cross-entropy, no penalty: the Playground's figures) and
    test accuracy into metrics.json."""

    config_cls = PointsTrainConfig

    def run(self, ctx: RunContext) -> str:
        import keras
        import numpy as np

        from dlpipe import atomic
        from dlpipe.models.trace_once import build_before_fit
        from dlpipe.pipelines.training.distribute import scale, steps_per_execution
        from dlpipe.pipelines.training.keras_fit import fit_verbosity

        cfg, model = self.config, ctx.need("model", "model")
        train_x, train_y = _arrays(ctx.need("train", "load"))
        test_x, test_y = _arrays(ctx.need("val", "load"))
        batch = cfg.batch_size * scale(cfg)  # the global batch (x R with distribute_scaling=linear, and the rate too)
        steps = -(-len(train_x) // batch)  # one call per epoch: tiny steps cost Python overhead, not math
        model.compile(keras.optimizers.SGD(cfg.learning_rate * scale(cfg)), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=steps_per_execution(steps))
        build_before_fit(model, (train_x, train_y))
        history = model.fit(train_x, train_y, batch_size=batch, epochs=cfg.epochs, shuffle=True,
                            # the test curve at every tenth of the run: measuring it each epoch doubled the fit's time
                            validation_data=(test_x, test_y), validation_freq=max(1, cfg.epochs // 10),
                            callbacks=list(ctx.extra_callbacks),
                            verbose=fit_verbosity(cfg.progress))
        ctx.history = {key: [float(v) for v in values] for key, values in history.history.items()}
        test_probs = model.predict(test_x, batch_size=1024, verbose=0)
        ctx.metrics = {"test_loss": _cross_entropy(test_probs, test_y),
                       "train_loss": _cross_entropy(model.predict(train_x, batch_size=1024, verbose=0), train_y),
                       "test_accuracy": float(np.mean(test_probs.argmax(axis=1) == test_y)),
                       "test_points": int(len(test_y)), "train_points": int(len(train_y)), "epochs": cfg.epochs}
        atomic.write_json(ctx.out_dir / "metrics.json", ctx.metrics)
        return (f"{cfg.epochs} epochs: test loss {ctx.metrics['test_loss']:.4f}, train loss "
                f"{ctx.metrics['train_loss']:.4f}, test accuracy {ctx.metrics['test_accuracy']:.1%}")


def _arrays(examples: Examples):
    import numpy as np

    return np.asarray(examples.inputs, np.float32).reshape(-1, 2), np.asarray(examples.labels, np.int64)


def _cross_entropy(probabilities, labels) -> float:
    """Mean cross-entropy with probabilities clipped to [1e-7, 1 - 1e-7], as Keras and the Playground page compute it."""
    import numpy as np

    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    return float(-np.mean(np.log(chosen)))


@dataclass(frozen=True)
class PointsExportConfig(ExportConfig):
    """Which artifacts to write (each takes float32 [N, 2] points)."""

    formats: list[str] = option(["keras"], "artifacts: keras, savedmodel, tflite, tflite-float16, tflite-dynamic")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.formats:
            require(name not in ("web", "tflite-int8", "onnx"), "formats",
                    f"{name} is not available for points; choose from keras, savedmodel, tflite, tflite-float16, "
                    "tflite-dynamic")


class PointsExportStage(ExportStage):
    """The shared export (artifacts with side files, each checked against the Keras model on the test points)."""

    config_cls = PointsExportConfig
