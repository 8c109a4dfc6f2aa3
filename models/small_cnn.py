"""A small convolutional network trained from scratch.

The classic MNIST-demo recipe (conv -> batch-norm -> ReLU -> pool, dropout),
grown to four stages for photos. It needs no pretrained weights, so the image
pipeline always has a backbone that works offline, and the benchmarks use it to
show what pretrained weights buy.
"""

from __future__ import annotations

import keras
from keras import layers


def small_cnn(
    input_shape: tuple[int, int, int] = (96, 96, 3),
    filters: tuple[int, ...] = (32, 64, 128, 256),
    dropout: float = 0.1,
    batch_norm: bool = True,
    initializer: str = "he_normal",
    name: str = "small_cnn",
) -> keras.Model:
    """Feature extractor: normalised pixels -> pooled feature vector (last filter count wide).

    `filters` sets each stage's width (the cost grows with its square); without
    batch-norm the convolutions get biases instead.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    if not filters or any(int(f) < 1 for f in filters):
        raise ValueError(f"`filters` must be one or more positive widths. Received: filters={filters}")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for stage, width in enumerate(filters):
        for conv in range(2 if stage else 1):
            x = layers.Conv2D(int(width), 3, padding="same", use_bias=not batch_norm, kernel_initializer=initializer,
                              name=f"stage{stage}_conv{conv}")(x)
            if batch_norm:
                # momentum 0.9: moving statistics settle within the few hundred steps of a small dataset
                x = layers.BatchNormalization(momentum=0.9, name=f"stage{stage}_bn{conv}")(x)
            x = layers.ReLU(name=f"stage{stage}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        if dropout:
            x = layers.SpatialDropout2D(dropout, name=f"stage{stage}_dropout")(x)
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=name)
