"""Stage `model` (image-classify): backbone + classification head for the loaded classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import FineTuning, ModelInput, RunContext, Stage

Normalize = Literal["backbone", "unit", "standardize", "tf", "caffe", "torch", "efficientnet_lite", "none"]


@dataclass(frozen=True)
class ModelConfig:
    """The network: which backbone, its weights, its input size and normalisation, and the head on top."""

    backbone: str = option("efficientnet_lite2", "feature extractor; `dlpipe backbones` lists them (default since issue 14: EfficientNet-Lite2's frozen features scored best by cross-validation, BENCHMARKS.md)")
    weights: str | None = option("imagenet", "imagenet (pretrained), none (from scratch) or a weights file path")
    image_size: int | None = option(None, "square input size in pixels; default: the backbone's own")
    normalize: Normalize = option(
        "backbone", "pixel normalisation inside the model: backbone (what its weights expect), unit ([0,1]), "
                    "standardize (per image and channel), or a named mode")
    mode: Literal["finetune", "probe"] = option(
        "finetune", "finetune: train the head, then unfreeze top blocks (train.*); probe: keep the pretrained "
                    "backbone frozen and fit a logistic-regression head on its features (seconds; train.probe_c)")
    dropout: float = option(0.2, "dropout before the classification layer")
    hidden_units: int = option(0, "optional dense layer in the head (0: none)")
    l1: float = option(0.0, "L1 regularisation of the head")
    l2: float = option(0.0, "L2 regularisation of the head")
    width: float = option(1.0, "from-scratch backbones (small_cnn, mlp): multiplies every layer's filters or units "
                               "(0.5: about a quarter of the compute)")
    batch_norm: bool = option(True, "from-scratch backbones: batch-norm after every hidden layer")
    initializer: Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal"] = option(
        "he_normal", "from-scratch backbones: kernel initialisation (he_* suits ReLU)")

    def __post_init__(self) -> None:
        require(self.image_size is None or self.image_size >= 8, "image_size", f"must be at least 8. Received: {self.image_size}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")
        require(self.hidden_units >= 0, "hidden_units", "must be >= 0")
        require(self.l1 >= 0 and self.l2 >= 0, "l1", "regularisation factors must be >= 0")
        require(0.0 < self.width <= 8.0, "width", f"must be in (0, 8]. Received: {self.width}")


class ModelStage(Stage):
    """Build the classifier: normalisation layer, backbone (frozen when pretrained) and a softmax head.

    Tells later stages what the model takes (`ctx.model_input`: size and the
    backbone's resize recipe) and which part may be fine-tuned (`ctx.fine_tuning`).
    """

    config_cls = ModelConfig
    head_activation = "softmax"  # one class per image; the multi-label task's stage says sigmoid

    def preflight(self) -> None:
        """model.image_size against the backbone's smallest buildable input, before TensorFlow is imported."""
        from dlpipe.models.backbone_sizes import check_input_size

        if self.config.image_size is not None:
            check_input_size(self.config.backbone, self.config.image_size)

    def head_options(self, spec: Any) -> dict:
        """Extra keyword arguments of `build_classifier` for this task's head (the multi-label stage's pooling)."""
        return {}

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.backbones import ScratchOptions, get_backbone, resolve_weights
        from dlpipe.models.classifier import BACKBONE_LAYER_NAME, build_classifier

        cfg = self.config
        spec = get_backbone(cfg.backbone)
        size = cfg.image_size or spec.input_size
        spec.check_input_size(size)
        ctx.model_input = ModelInput(size, spec.resize)
        ctx.model = build_classifier(
            spec,
            num_classes=len(ctx.need("class_names", "load")),
            image_size=size,
            weights=cfg.weights,
            normalization=None if cfg.normalize == "backbone" else cfg.normalize,
            dropout=cfg.dropout,
            hidden_units=cfg.hidden_units,
            l1=cfg.l1,
            l2=cfg.l2,
            scratch=ScratchOptions(cfg.width, cfg.batch_norm, cfg.initializer),
            activation=self.head_activation,
            **self.head_options(spec),
        )
        pretrained = resolve_weights(spec, cfg.weights) is not None
        if cfg.mode == "probe" and not pretrained:
            from dlpipe.errors import ConfigError

            raise ConfigError("model.mode", "probe needs a pretrained backbone (model.weights=imagenet or a file)")
        if cfg.mode == "probe" and cfg.hidden_units:
            from dlpipe.errors import ConfigError

            raise ConfigError("model.mode", "probe fits a linear head; set model.hidden_units=0")
        ctx.fine_tuning = (FineTuning(BACKBONE_LAYER_NAME, spec.block_pattern, probe=cfg.mode == "probe",
                                       probe_features=True,
                                       source=f"{spec.name}:{cfg.weights}:{size}:{cfg.normalize}")
                           if pretrained else None)
        weights = "random init" if not pretrained else cfg.weights
        return (f"{spec.name} ({weights}), {size}x{size} input, {ctx.model.count_params():,} parameters, "
                f"{len(ctx.class_names)} classes")
