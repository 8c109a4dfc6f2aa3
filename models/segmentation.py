"""U-Net-style segmentation networks: an encoder's feature maps at strides 2..32, a decoder back to full size.

The encoder is EfficientNet-Lite0 (ImageNet weights, frozen first and then fine-tuned block by
block, like the classifier's backbone) or, for tiny data and tests, a small conv encoder trained
from scratch. The decoder upsamples by 2 five times, each time concatenating the encoder's map at
that stride (the skip connection) and mixing with two 3x3 conv + batch-norm + ReLU layers, and ends
in a per-pixel softmax. The model takes raw RGB pixels in [0, 255] (normalisation inside, as every
dlpipe model) and returns (N, S, S, classes); S must be a multiple of 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from dlpipe.errors import ConfigError
from dlpipe.models.backbones import resolve_weights
from dlpipe.models.layers import ImagePreprocess
from dlpipe.registry import Registry

ENCODER_LAYER_NAME = "backbone"  # the name the train stage's fine-tuning looks the encoder up by
# batch-norm statistics of the layers that train from scratch follow the data faster than Keras' default
# 0.99: a small segmentation set gives few steps, and slow statistics leave validation at chance for epochs
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class EncoderSpec:
    """One U-Net encoder, so adding an encoder means adding a row.

    skips name the layers the decoder taps: the last one at stride 2, 4, 8, 16 and 32 (the deepest
    features at each resolution), shallowest first; the names do not depend on the input size.
    """

    name: str
    build: Callable[[int, "str | None"], keras.Model]  # (image_size, weights: None, "imagenet" or a file) -> base
    normalization: str
    block_pattern: str  # regex whose first group names a layer's block (fine-tuning unfreezes the top N)
    skips: tuple[str, str, str, str, str]
    pretrained: bool
    description: str


ENCODERS: Registry[EncoderSpec] = Registry("encoder")


def small_encoder(image_size: int, width: int = 16) -> keras.Model:
    """Five stages of two 3x3 convs, each halving the size: a from-scratch encoder for tiny data."""
    inputs = keras.Input((image_size, image_size, 3), name="input")
    x = inputs
    for stage in range(5):
        filters = width * 2 ** min(stage, 3)
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"stage{stage}_conv1")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"stage{stage}_bn1")(x)
        x = layers.ReLU(name=f"stage{stage}_relu1")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"stage{stage}_conv2")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"stage{stage}_bn2")(x)
        x = layers.ReLU(name=f"stage{stage}_out")(x)
    return keras.Model(inputs, x, name="small_encoder")


def _small(image_size: int, weights: str | None) -> keras.Model:
    base = small_encoder(image_size)
    if weights is not None:
        base.load_weights(weights)
    return base


def _efficientnet_lite0(image_size: int, weights: str | None) -> keras.Model:
    from dlpipe.models.efficientnet_lite import efficientnet_lite

    base = efficientnet_lite("efficientnet_lite0", include_top=False, weights=weights,
                             input_shape=(image_size, image_size, 3))
    if weights is None:  # trained from scratch: its statistics must follow the data as fast as the decoder's
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM
    return base


def _register_encoders() -> None:
    rows = [
        EncoderSpec("efficientnet_lite0", _efficientnet_lite0, "efficientnet_lite", r"^(block\d+)_",
                    ("block1_expand_activation", "block3_expand_activation", "block5_expand_activation",
                     "block11_expand_activation", "top_activation"), True,
                    "EfficientNet-Lite0 (ImageNet weights, frozen then fine-tuned)"),
        EncoderSpec("small", _small, "unit", r"^(stage\d+)_", tuple(f"stage{s}_out" for s in range(5)), False,
                    "a tiny from-scratch conv encoder for small data and tests"),
    ]
    for row in rows:
        ENCODERS.add(row.name, row)


_register_encoders()


def build_encoder(spec: EncoderSpec, image_size: int, weights: str | None) -> keras.Model:
    """The multi-output encoder named ENCODER_LAYER_NAME: its skip layers' maps at strides 2..32."""
    if image_size % 32:
        raise ConfigError("model.image_size", f"a U-Net needs a multiple of 32. Received: {image_size}")
    base = spec.build(image_size, weights)
    outputs = [base.get_layer(layer).output for layer in spec.skips]
    return keras.Model(base.input, outputs, name=ENCODER_LAYER_NAME)


def encoder_features(spec: EncoderSpec, image_size: int, weights: str | None) -> tuple[keras.KerasTensor, list]:
    """The pixel input (RGB in [0, 255], normalised inside) and the encoder's maps at strides 2..32. A pretrained
    encoder starts frozen and always runs with `training=False`: its batch-norm statistics stay ImageNet's, also
    when fine-tuned."""
    encoder = build_encoder(spec, image_size, weights)
    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    x = ImagePreprocess(spec.normalization, name="normalize")(inputs)
    if weights is None:
        return inputs, encoder(x)
    encoder.trainable = False
    return inputs, encoder(x, training=False)


def build_unet(encoder_name: str, num_classes: int, image_size: int, weights: str | None = None,
               decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16), dropout: float = 0.1) -> tuple[keras.Model, str]:
    """The segmentation model and its encoder's block regex; a pretrained encoder starts frozen.

    weights: "imagenet", None/"none" (from scratch) or a weights file, as the classifier takes them.

    The encoder runs with `training=False` (its batch-norm statistics stay ImageNet's, also when
    fine-tuned), as in the classifier.
    """
    if num_classes < 2:
        raise ConfigError("classes", f"need at least 2 classes. Received: {num_classes}")
    spec = ENCODERS.get(encoder_name, key="model.encoder")
    weights = resolve_weights(spec, weights)
    inputs, features = encoder_features(spec, image_size, weights)
    skips, x = list(features[:-1]), features[-1]
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level, filters in enumerate(decoder_filters):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder{level}_up")(x)
        if level < len(skips):
            x = layers.Concatenate(name=f"decoder{level}_concat")([x, skips[-1 - level]])
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"decoder{level}_conv{conv}")(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"decoder{level}_bn{conv}")(x)
            x = layers.ReLU(name=f"decoder{level}_relu{conv}")(x)
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32",  # float32 under mixed precision
                            name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"unet_{encoder_name}"), spec.block_pattern
