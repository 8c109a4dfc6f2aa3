"""Stages `model` and `preprocess` (image-multilabel): the image task's, with one sigmoid per label and the whole photo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.detect.model import COCO_START as HEATMAP_START
from dlpipe.pipelines.image_classify.model import ModelConfig, ModelStage
from dlpipe.pipelines.image_classify.preprocess import ImagePreprocessConfig, ImagePreprocessStage
from dlpipe.pipelines.stage import FineTuning, ModelInput, RunContext


@dataclass(frozen=True)
class MultiLabelModelConfig(ModelConfig):
    """The network: which backbone, its weights, its input size and normalisation, and the head on top.

    Defaults for photos whose labels can be small things in a scene (the fashion scenes of BENCHMARKS.md): with
    boxes, the detect task's CenterNet scoring each label by its highest heat-map peak (recipes.py); with labels
    only, EfficientNet-Lite0 at 448 px keeps a 28-px item 28 px wide, where the image task's 260 px would halve it.
    """

    backbone: str = option(
        "auto", "feature extractor; `dlpipe backbones` lists them. centernet_coco: the detect task's COCO-pretrained "
                "CenterNet, a label's score its highest heat-map peak, trained on the boxes of a COCO input (needs "
                "scripts/fetch_coco_detector.sh). auto: centernet_coco for a COCO input, efficientnet_lite0 for a CSV")
    image_size: int | None = option(448, "square input size in pixels (small labelled things need pixels); "
                                         "null: the backbone's own")
    train_batch_norm: bool = option(
        True, "fine-tuning also trains the batch-norm scales and offsets (their ImageNet statistics stay): on the "
              "fashion scenes, fine-tuning every block with them frozen did not learn at all (loss stuck at 0.69)")
    pooling: Literal["auto", "lse", "avg"] = option(
        "auto", "how the head sees the scene: lse (every location of a feature map scored per label by a 1x1 "
                "convolution, pooled by log-sum-exp: a small labelled thing is not averaged away), avg (global "
                "average of the backbone's features, then one sigmoid per label) or auto: lse for a pretrained "
                "backbone being fine-tuned (where it was measured better), avg otherwise (from scratch, "
                "model.mode=probe, a hidden layer, a TF-Hub module or the mlp)")
    lse_sharpness: float = option(5.0, "pooling=lse: r of (1/r) log(mean(exp(r z))); small: near the average, "
                                       "large: near the maximum over locations")
    lse_map: Literal["last", "finer"] = option(
        "finer", "pooling=lse: which feature map is scored: finer (the last one of twice the last map's side, stride "
                 "16: 28x28 at 448 px, batch-normalised, the layers after it dropped) or last (the backbone's last, "
                 "stride 32: 14x14)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.lse_sharpness > 0, "lse_sharpness", f"must be above 0. Received: {self.lse_sharpness}")
        require(not (self.pooling == "lse" and self.mode == "probe"), "mode",
                "probe fits a linear head on pooled features; use model.pooling=avg")


class MultiLabelModelStage(ModelStage):
    """Build the multi-label classifier: normalisation, backbone (frozen when pretrained), one sigmoid per label.

    Any set of labels can be on at once; each label's decision threshold is chosen later (evaluate) and folded
    into the exported graph.
    """

    config_cls = MultiLabelModelConfig
    head_activation = "sigmoid"

    def preflight(self) -> None:
        if self.config.backbone == "auto":  # the recipes pick it by the data (recipes.py); a run always has data
            from dlpipe.errors import ConfigError

            raise ConfigError("model.backbone", "auto picks the head by the data: give --data (or load.path), or "
                                                "name a backbone")
        if self.config.backbone != HEATMAP_START:
            super().preflight()

    def head_options(self, spec: Any) -> dict:
        return {"pooling": self.pooling(spec), "sharpness": self.config.lse_sharpness,
                "finer_map": self.config.lse_map == "finer"}

    def pooling(self, spec: Any) -> str:
        """model.pooling in force: auto is lse where the fashion scenes measured it better than avg (a pretrained
        convolutional backbone, fine-tuned, no hidden layer: BENCHMARKS.md), avg wherever lse cannot or was not
        measured."""
        cfg = self.config
        if cfg.pooling != "auto":
            return cfg.pooling
        from dlpipe.models.backbones import resolve_weights
        from dlpipe.models.tfhub import PREFIX

        convolutional = spec.name != "mlp" and not spec.name.startswith(PREFIX)
        fine_tuned = cfg.mode == "finetune" and not cfg.hidden_units and resolve_weights(spec, cfg.weights) is not None
        return "lse" if convolutional and fine_tuned else "avg"

    def run(self, ctx: RunContext) -> str:
        import dataclasses

        from dlpipe.models.classifier import LSE_POOL_LAYER_NAME

        if self.config.backbone == HEATMAP_START:
            return self.heatmap_start(ctx)
        summary = super().run(ctx)
        pooling = "lse" if any(layer.name == LSE_POOL_LAYER_NAME for layer in ctx.model.layers) else "avg"  # as built
        if ctx.fine_tuning is not None:  # the lse head has no pooled features for a linear probe
            ctx.fine_tuning = dataclasses.replace(ctx.fine_tuning, batch_norm=self.config.train_batch_norm,
                                                  probe_features=pooling == "avg")
        head = f"{self.config.lse_map} map, log-sum-exp" if pooling == "lse" else "average"
        return f"{summary}, {head} pooling"

    def heatmap_start(self, ctx: RunContext) -> str:
        """The detect task's COCO CenterNet as the classifier (a label's score: its highest heat-map peak); the
        detector with its box head is what training fits (`ctx.training_network`)."""
        from dlpipe.errors import ConfigError
        from dlpipe.models.detector import ENCODER_LAYER_NAME
        from dlpipe.models.tasks.multilabel.heatmap_head import heatmap_classifier
        from dlpipe.pipelines.detect.model import DetectModelConfig, coco_start, image_size_problem

        size = self.config.image_size or DetectModelConfig().image_size
        problem = image_size_problem(size)
        if problem:
            raise ConfigError("model.image_size", f"{problem} ({HEATMAP_START})")
        if any(len(split.objects) != len(split) for split in (ctx.train, ctx.val)):
            raise ConfigError("model.backbone", f"{HEATMAP_START} learns from boxes: give a COCO annotations JSON "
                                                "(a CSV has labels only), or choose another backbone")
        classes = len(ctx.need("class_names", "load"))
        detector, pattern = coco_start(classes, size)
        ctx.training_network = detector
        ctx.model = heatmap_classifier(detector)
        ctx.model_input = ModelInput(size, "stretch")
        ctx.fine_tuning = FineTuning(ENCODER_LAYER_NAME, pattern)
        return (f"{HEATMAP_START} (COCO detection), {size}x{size} input, {detector.count_params():,} parameters "
                f"with its box head, {classes} labels, each scored by its highest heat-map peak")


@dataclass(frozen=True)
class MultiLabelPreprocessConfig(ImagePreprocessConfig):
    """How a file becomes model input pixels (the size itself is the model's: model.image_size).

    The whole photo is kept (stretch): a centre crop would cut away labelled things near the edges. Sampling on
    MediaPipe's grid makes the exported .tflite see in MediaPipe's ImageClassifier the pixels it sees in dlpipe.
    """

    resize: Literal["stretch", "pad", "crop"] | None = option(
        "stretch", "stretch (the whole photo, ignoring aspect), pad (letterbox) or crop (centre crop: cuts the edges)")
    sampling: Literal["antialias", "mediapipe"] = option(
        "mediapipe", "mediapipe (bilinear on MediaPipe Tasks' grid: the .tflite sees the same pixels in MediaPipe) or "
                     "antialias (filter, then bilinear: less aliasing when shrinking large photos)")


class MultiLabelPreprocessStage(ImagePreprocessStage):
    """Fix the preprocessing spec (saved with every artifact) and build the decoded, cached datasets.

    The image task's code, with the whole photo kept.
    """

    config_cls = MultiLabelPreprocessConfig
