"""Stage `model`: backbone + classification head for the loaded classes."""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = option("efficientnet_lite0", "feature extractor; `dlpipe backbones` lists them")
    weights: str | None = option("imagenet", "imagenet (pretrained), none (from scratch) or a weights file path")
    dropout: float = option(0.2, "dropout before the classification layer")
    hidden_units: int = option(0, "optional dense layer in the head (0: none)")
    l1: float = option(0.0, "L1 regularisation of the head")
    l2: float = option(0.0, "L2 regularisation of the head")

    def __post_init__(self) -> None:
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1). Received: {self.dropout}")
        require(self.hidden_units >= 0, "hidden_units", "must be >= 0")
        require(self.l1 >= 0 and self.l2 >= 0, "l1", "regularisation factors must be >= 0")


class ModelStage(Stage):
    name = "model"
    config_cls = ModelConfig

    def run(self, ctx: RunContext) -> str:
        from dlpipe.models.backbones import get_backbone
        from dlpipe.models.classifier import build_classifier

        cfg = self.config
        spec = ctx.backbone_spec or get_backbone(cfg.backbone)
        ctx.backbone_spec = spec
        prep = ctx.need("preprocessing", "preprocess")
        normalize = ctx.config["preprocess"].normalize
        ctx.model = build_classifier(
            spec,
            num_classes=len(ctx.need("class_names", "load")),
            image_size=prep.image_size,
            weights=cfg.weights,
            normalization=None if normalize == "backbone" else normalize,
            dropout=cfg.dropout,
            hidden_units=cfg.hidden_units,
            l1=cfg.l1,
            l2=cfg.l2,
        )
        weights = "random init" if cfg.weights in (None, "none") else cfg.weights
        return f"{spec.name} ({weights}), {ctx.model.count_params():,} parameters, {len(ctx.class_names)} classes"
