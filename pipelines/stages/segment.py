"""The stages of the `segment` pipeline that differ from classification: load, model, preprocess, evaluate.

train and export are the shared stages: the model's per-pixel softmax trains with the same
sparse cross-entropy (per pixel), two phases (decoder with the encoder frozen, then the top encoder
blocks, through `ctx.fine_tuning`), checkpoints and resume; export writes the formats through the
segment task's exporters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import Examples, FineTuning, ModelInput, RunContext, Stage, register_stage

TASK = "segment"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "sample_predictions.png"


@dataclass(frozen=True)
class SegmentLoadConfig:
    """Where the photos and masks are and how to split them."""

    path: str | None = option(None, "dataset folder holding images/ (photos) and masks/ (PNG of class indices per pixel, "
                                    "same file stems, same size; optional classes.txt names the classes) (--data)")
    val_path: str | None = option(None, "separate validation folder laid out the same way; when set, val_split is not used")
    val_split: float = option(0.2, "fraction of the pairs held out for validation (seeded)")
    classes: list[str] | None = option(None, "class names in index order (default: classes.txt, else background, class1, ...)")
    max_images: int | None = option(None, "use at most this many pairs (quick trials)")

    def __post_init__(self) -> None:
        require(0.0 < self.val_split < 1.0 or self.val_path is not None, "val_split",
                f"must be in (0, 1) when no val_path is given. Received: {self.val_split}")
        require(self.max_images is None or self.max_images > 1, "max_images", "must be at least 2")


@register_stage(TASK, "load")
class SegmentLoadStage(Stage):
    """Pair every photo of images/ with its mask in masks/, check each pair, and split them (seeded)."""

    config_cls = SegmentLoadConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe.data.masks import scan_mask_folder
        from dlpipe.errors import ConfigError, DataError

        cfg = self.config
        if not cfg.path:
            raise ConfigError("load.path", "no dataset given; pass --data DIR (with images/ and masks/)")
        folder = scan_mask_folder(cfg.path, cfg.classes, max_images=cfg.max_images)
        ctx.class_names = folder.class_names
        if cfg.val_path:
            val = scan_mask_folder(cfg.val_path, folder.class_names)
            ctx.train = Examples(folder.images, targets=folder.masks)
            ctx.val = Examples(val.images, targets=val.masks)
        else:
            order = np.random.default_rng(ctx.seed).permutation(len(folder.images))
            held = max(1, int(round(len(order) * cfg.val_split)))
            if len(order) - held < 1:
                raise DataError(cfg.path, f"{len(order)} pairs are too few to split; add images or give load.val_path")
            val_idx, train_idx = sorted(order[:held]), sorted(order[held:])
            ctx.train = Examples([folder.images[i] for i in train_idx], targets=[folder.masks[i] for i in train_idx])
            ctx.val = Examples([folder.images[i] for i in val_idx], targets=[folder.masks[i] for i in val_idx])
        ctx.report["data"] = {"classes": folder.class_names, "pixels_per_class": folder.pixels_per_class,
                              "train_images": len(ctx.train), "val_images": len(ctx.val)}
        return (f"{len(folder.images)} image/mask pairs, {len(folder.class_names)} classes "
                f"({', '.join(folder.class_names)}), {len(ctx.train)} train / {len(ctx.val)} val")


@dataclass(frozen=True)
class SegmentModelConfig:
    """The network: encoder, its weights, the input size, the decoder."""

    encoder: Literal["efficientnet_lite0", "small"] = option(
        "efficientnet_lite0", "efficientnet_lite0 (ImageNet weights, frozen then fine-tuned) or small (a tiny "
                              "from-scratch conv encoder for small data and tests)")
    weights: str | None = option("imagenet", "imagenet (pretrained encoder) or none (from scratch)")
    image_size: int = option(224, "square input size in pixels, a multiple of 32 (photos are stretched to it)")
    decoder_filters: list[int] = option([256, 128, 64, 32, 16], "channels of the five decoder stages (stride 16 to 1)")
    dropout: float = option(0.1, "dropout on the encoder's deepest features")

    def __post_init__(self) -> None:
        require(self.image_size >= 32 and self.image_size % 32 == 0, "image_size",
                f"must be a multiple of 32. Received: {self.image_size}")
        require(len(self.decoder_filters) == 5 and all(f > 0 for f in self.decoder_filters), "decoder_filters",
                "must be five positive channel counts")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")


@register_stage(TASK, "model")
class SegmentModelStage(Stage):
    """Build the U-Net: normalisation, encoder (frozen when pretrained), decoder with skip connections, softmax.

    Tells later stages the input size (`ctx.model_input`) and which part may be fine-tuned (`ctx.fine_tuning`).
    """

    config_cls = SegmentModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.segmentation import ENCODER_LAYER_NAME, build_unet

        cfg = self.config
        weights = None if cfg.weights is None or str(cfg.weights).lower() in ("none", "null", "") else cfg.weights
        ctx.model, pattern = build_unet(cfg.encoder, len(ctx.need("class_names", "load")), cfg.image_size, weights,
                                        tuple(cfg.decoder_filters), cfg.dropout)
        ctx.model_input = ModelInput(cfg.image_size, "stretch")
        ctx.fine_tuning = FineTuning(ENCODER_LAYER_NAME, pattern) if weights else None
        return (f"U-Net on {cfg.encoder} ({weights or 'random init'}), {cfg.image_size}x{cfg.image_size} input, "
                f"{ctx.model.count_params():,} parameters, {len(ctx.class_names)} classes")


@dataclass(frozen=True)
class SegmentPreprocessConfig:
    """How photos and masks become tensors, and the training-time flips."""

    flip: bool = option(True, "flip each training pair left-right at random (image and mask together)")
    cache: bool = option(True, "keep decoded images in memory after the first epoch")

    def __post_init__(self) -> None:
        pass


@register_stage(TASK, "preprocess")
class SegmentPreprocessStage(Stage):
    """Decode and stretch photos to the model's size (the code inference uses); masks resized nearest-neighbour."""

    config_cls = SegmentPreprocessConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.tasks.segment import SegmentPreprocessing

        model_input = ctx.need("model_input", "model")
        ctx.preprocessing = SegmentPreprocessing(image_size=model_input.image_size)
        ctx.train_data = pair_dataset(ctx.train, ctx.preprocessing, self.config.cache, self.config.flip, ctx.seed)
        ctx.val_data = pair_dataset(ctx.val, ctx.preprocessing, self.config.cache) if len(ctx.val) else None
        return f"{model_input.image_size}x{model_input.image_size} stretched, flips {'on' if self.config.flip else 'off'}"


def pair_dataset(examples: Examples, prep, cache: bool = True, flip: bool = False, seed: int = 0):
    """Unbatched (pixels (S, S, 3) float32, mask (S, S) int32) pairs; masks are read once, with Pillow."""
    import numpy as np
    import tensorflow as tf

    from dlpipe.data.images import tf_path
    from dlpipe.data.masks import read_mask
    from dlpipe.data.preprocess import load_image

    masks = np.stack([read_mask(path, prep.image_size) for path in examples.targets]).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices(([tf_path(p) for p in examples.inputs], masks))
    ds = ds.map(lambda p, m: (load_image(p, prep), m), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if flip:
        def random_flip(image, mask):
            flipped = tf.random.uniform([], seed=seed) < 0.5
            return (tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image),
                    tf.cond(flipped, lambda: tf.reverse(mask, [1]), lambda: mask))

        ds = ds.map(random_flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds


@dataclass(frozen=True)
class SegmentEvaluateConfig:
    """The quality gate and what to write."""

    min_mean_iou: float = option(0.0, "fail the run before export when validation mean IoU is below this")
    plots: bool = option(True, "write sample_predictions.png and training_curves.png")
    samples: int = option(6, "validation photos shown in sample_predictions.png")
    batch_size: int = option(16, "images per prediction step")
    bootstrap: int = option(1000, "bootstrap resamples (over images) for the 95% intervals")

    def __post_init__(self) -> None:
        require(0.0 <= self.min_mean_iou <= 1.0, "min_mean_iou", f"must be in [0, 1]. Received: {self.min_mean_iou}")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(self.samples >= 0, "samples", "must be >= 0")
        require(self.bootstrap >= 0, "bootstrap", "must be >= 0")


@register_stage(TASK, "evaluate")
class SegmentEvaluateStage(Stage):
    """Score the validation split: per-class IoU and mean IoU with bootstrap intervals (metrics.json), plots.

    Stops the run before export when mean IoU is below `min_mean_iou`.
    """

    config_cls = SegmentEvaluateConfig

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe import atomic
        from dlpipe.data.datasets import batched
        from dlpipe.errors import DlpipeError
        from dlpipe.models.segment_metrics import segmentation_report
        from dlpipe.pipelines.plots import plot_training_curves
        from dlpipe.pipelines.segment_plots import plot_sample_predictions

        cfg = self.config
        model = ctx.need("model", "model")
        if not len(ctx.val):
            raise DlpipeError("evaluate: no validation data; set load.val_split above 0 or give load.val_path")
        data = batched(ctx.val_data, cfg.batch_size)
        probabilities = model.predict(data.map(lambda x, y: x), verbose=0)
        predicted = np.argmax(probabilities, axis=-1).astype(np.uint8)
        truth = np.concatenate([y.numpy() for _, y in data]).astype(np.uint8)
        report = segmentation_report(list(truth), list(predicted), ctx.class_names, resamples=cfg.bootstrap, seed=ctx.seed)
        report.update(split="validation", resolution=f"{predicted.shape[1]}x{predicted.shape[2]} (the model's input)",
                      min_mean_iou=cfg.min_mean_iou, passed=report["mean_iou"] >= cfg.min_mean_iou)
        per_image = [float(np.mean(t == p)) for t, p in zip(truth, predicted)]
        report["worst_images"] = [{"input": ctx.val.inputs[i], "pixel_accuracy": per_image[i]}
                                  for i in np.argsort(per_image)[:5]]
        ctx.metrics = report
        atomic.write_json(ctx.out_dir / METRICS_FILE, report)
        if cfg.plots:
            if cfg.samples:
                images = np.concatenate([x.numpy() for x, _ in data.take((cfg.samples + cfg.batch_size - 1) // cfg.batch_size)])
                count = min(cfg.samples, len(images))
                plot_sample_predictions(images[:count], truth[:count], predicted[:count], ctx.class_names,
                                        ctx.out_dir / SAMPLES_FILE, f"validation mean IoU {report['mean_iou']:.3f}")
            if ctx.history.get("phases"):
                plot_training_curves(ctx.history["phases"], ctx.out_dir / "training_curves.png")
        low, high = report["mean_iou_interval"]
        ious = ", ".join(f"{name} {c['iou']:.3f}" if c["iou"] is not None else f"{name} -"
                         for name, c in report["per_class"].items())
        summary = (f"validation mean IoU {report['mean_iou']:.3f} (95% interval {low:.3f}-{high:.3f}) on "
                   f"{report['count']} images; per class: {ious}")
        if not report["passed"]:
            raise DlpipeError(f"{summary}: below evaluate.min_mean_iou {cfg.min_mean_iou}; nothing exported "
                              f"(see {ctx.out_dir / METRICS_FILE})")
        return summary
