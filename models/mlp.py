"""A multi-layer perceptron backbone: flatten the pixels, then dense layers.

The classic baseline for MNIST-sized images (it reaches about 89% on
Fashion-MNIST): no convolutions, so it shows what the spatial prior of a CNN
buys. Like every dlpipe backbone it maps normalised pixels (the classifier's
`ImagePreprocess` layer sits in front) to a feature vector, here the last
hidden layer; the classifier adds the softmax head. Trained from scratch only.
"""

from __future__ import annotations

import keras
from keras import layers

INITIALIZERS = ("he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal")


def mlp(
    input_shape: tuple[int, int, int] = (28, 28, 3),
    widths: tuple[int, ...] = (512, 256),
    dropout: float = 0.2,
    batch_norm: bool = True,
    activation: str = "relu",
    initializer: str = "he_normal",
    l2: float = 0.0,
    name: str = "mlp",
) -> keras.Model:
    """Feature extractor: normalised pixels -> the last hidden layer (widths[-1] wide).

    Each hidden layer is Dense -> (BatchNorm) -> activation -> (Dropout). With
    batch-norm the dense layer has no bias (the norm's offset replaces it).
    He initialisation suits ReLU; use glorot_* for tanh/sigmoid. `l2` applies
    to every hidden kernel.
    """
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"`widths` must be one or more positive layer sizes. Received: widths={widths}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    if initializer not in INITIALIZERS:
        raise ValueError(f"`initializer` must be one of {list(INITIALIZERS)}. Received: initializer={initializer!r}")
    if l2 < 0:
        raise ValueError(f"`l2` must be >= 0. Received: l2={l2}")
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Flatten(name="flatten")(inputs)
    for index, width in enumerate(widths):
        x = layers.Dense(int(width), use_bias=not batch_norm, kernel_initializer=initializer,
                         kernel_regularizer=regularizer, name=f"dense{index}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"dense{index}_bn")(x)
        x = layers.Activation(activation, name=f"dense{index}_{activation}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense{index}_dropout")(x)
    return keras.Model(inputs, x, name=name)
