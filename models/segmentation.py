"""U-Net-style segmentation networks: an encoder's feature maps at strides 2..32, a decoder back to full size.

The encoder is EfficientNet-Lite0 (ImageNet weights, frozen first and then fine-tuned block by
block, like the classifier's backbone) or, for tiny data and tests, a small conv encoder trained
from scratch. The decoder upsamples by 2 five times, each time concatenating the encoder's map at
that stride (the skip connection) and mixing with two 3x3 conv + batch-norm + ReLU layers, and ends
in a per-pixel softmax. The model takes raw RGB pixels in [0, 255] (normalisation inside, as every
dlpipe model) and returns (N, S, S, classes); S must be a multiple of 32.
"""

from __future__ import annotations

import keras
from keras import layers

from dlpipe.errors import ConfigError
from dlpipe.models.layers import ImagePreprocess

ENCODER_LAYER_NAME = "backbone"  # the name the train stage's fine-tuning looks the encoder up by
ENCODERS = ("efficientnet_lite0", "small")
LITE_BLOCK_PATTERN = r"^(block\d+)_"
SMALL_BLOCK_PATTERN = r"^(stage\d+)_"
# batch-norm statistics of the layers that train from scratch follow the data faster than Keras' default
# 0.99: a small segmentation set gives few steps, and slow statistics leave validation at chance for epochs
BN_MOMENTUM = 0.9


def skip_layers(encoder: keras.Model, image_size: int) -> list[str]:
    """The last layer at each stride 2, 4, 8, 16, 32 (the deepest features at that resolution)."""
    chosen: dict[int, str] = {}
    for layer in encoder.layers[1:]:
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is None or len(shape) != 4 or not shape[1]:
            continue
        stride = image_size // int(shape[1])
        if stride in (2, 4, 8, 16, 32):
            chosen[stride] = layer.name
    missing = [s for s in (2, 4, 8, 16, 32) if s not in chosen]
    if missing:
        raise ConfigError("model.encoder", f"encoder {encoder.name} has no feature map at stride(s) {missing}")
    return [chosen[s] for s in (2, 4, 8, 16, 32)]


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


def build_encoder(name: str, image_size: int, weights: str | None) -> tuple[keras.Model, str, str]:
    """(multi-output encoder named ENCODER_LAYER_NAME, its normalisation mode, its block regex)."""
    if image_size % 32:
        raise ConfigError("model.image_size", f"a U-Net needs a multiple of 32. Received: {image_size}")
    if name == "efficientnet_lite0":
        from dlpipe.models.efficientnet_lite import efficientnet_lite

        base = efficientnet_lite("efficientnet_lite0", include_top=False, weights=weights,
                                 input_shape=(image_size, image_size, 3))
        if weights is None:  # trained from scratch: its statistics must follow the data as fast as the decoder's
            for layer in base.layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.momentum = BN_MOMENTUM
        normalization, pattern = "efficientnet_lite", LITE_BLOCK_PATTERN
    elif name == "small":
        if weights is not None:
            raise ConfigError("model.weights", "the small encoder has no pretrained weights; use --set model.weights=none")
        base = small_encoder(image_size)
        normalization, pattern = "unit", SMALL_BLOCK_PATTERN
    else:
        raise ConfigError("model.encoder", f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    outputs = [base.get_layer(layer).output for layer in skip_layers(base, image_size)]
    return keras.Model(base.input, outputs, name=ENCODER_LAYER_NAME), normalization, pattern


def build_unet(encoder_name: str, num_classes: int, image_size: int, weights: str | None = None,
               decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16), dropout: float = 0.1) -> tuple[keras.Model, str]:
    """The segmentation model and its encoder's block regex; a pretrained encoder starts frozen.

    The encoder runs with `training=False` (its batch-norm statistics stay ImageNet's, also when
    fine-tuned), as in the classifier.
    """
    if num_classes < 2:
        raise ConfigError("classes", f"need at least 2 classes. Received: {num_classes}")
    encoder, normalization, pattern = build_encoder(encoder_name, image_size, weights)
    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    x = ImagePreprocess(normalization, name="normalize")(inputs)
    if weights is not None:
        encoder.trainable = False
        features = encoder(x, training=False)
    else:
        features = encoder(x)
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
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"unet_{encoder_name}"), pattern
