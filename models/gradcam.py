"""Grad-CAM: where an image classifier looked, from the gradient of a class score at the backbone's last
feature map (Selvaraju et al., 2017).

Works on the classifiers `models/classifier.py` builds (normalise -> backbone -> head, one chain), also inside a
test-time-flip wrapper. The score is the class's logit (the last Dense layer before its softmax or sigmoid), so a
confident answer still has a gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlpipe.models.classifier import BACKBONE_LAYER_NAME


def find_classifier(model: Any) -> Any | None:
    """`model` itself or the model nested in it (e.g. by test-time flips) that holds the backbone; None if none."""
    names = {layer.name for layer in getattr(model, "layers", [])}
    if BACKBONE_LAYER_NAME in names:
        return model
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers"):
            found = find_classifier(layer)
            if found is not None:
                return found
    return None


def last_feature_layer(backbone: Any) -> Any | None:
    """The backbone's last layer with a spatial output (batch, height, width, channels) computed by a convolution:
    what Grad-CAM weighs. None for a backbone without one (an MLP flattens its input pixels)."""
    import keras

    layers = [layer for layer in getattr(backbone, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    first_conv = next((i for i, layer in enumerate(layers) if len(getattr(getattr(layer, "kernel", None), "shape", ())) == 4
                       or hasattr(layer, "depthwise_kernel")), None)
    if first_conv is None:
        return None
    for layer in reversed(layers[first_conv:]):
        output = getattr(layer, "output", None)
        if output is not None and len(getattr(output, "shape", ())) == 4:
            return layer
    return None


def grad_cam(model: Any, pixels: np.ndarray, class_indices: list[int]) -> np.ndarray:
    """One heat map per image (feature-map resolution, scaled to [0, 1]) for its class in `class_indices`.

    Raises ValueError when `model` has no backbone with a spatial feature map (e.g. an MLP).
    """
    import keras
    import tensorflow as tf

    classifier = find_classifier(model)
    if classifier is None:
        raise ValueError("no backbone layer to explain")
    backbone = classifier.get_layer(BACKBONE_LAYER_NAME)
    feature_layer = last_feature_layer(backbone)
    if feature_layer is None:
        raise ValueError(f"backbone {backbone.name} has no spatial feature map")
    features = keras.Model(backbone.inputs, [feature_layer.output, backbone.output])
    x = tf.convert_to_tensor(np.asarray(pixels, np.float32))
    layers = [layer for layer in classifier.layers if not isinstance(layer, keras.layers.InputLayer)]
    with tf.GradientTape() as tape:
        feature_map = None
        for layer in layers:
            if layer is backbone:
                feature_map, x = features(x, training=False)
            elif layer is layers[-1] and isinstance(layer, keras.layers.Dense):
                x = tf.matmul(x, layer.kernel) + (layer.bias if layer.use_bias else 0.0)  # the logits
            else:
                x = layer(x, training=False)
        scores = tf.gather(x, class_indices, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, feature_map)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)).numpy()
    peaks = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)


def overlay(pixels: np.ndarray, heat: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """The image (RGB in [0, 255]) with the heat map, stretched to its size, blended in as a colour map (uint8)."""
    import matplotlib

    from PIL import Image

    height, width = pixels.shape[:2]
    stretched = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))
    colours = matplotlib.colormaps["jet"](stretched / 255.0)[..., :3] * 255
    return np.clip((1 - strength) * np.asarray(pixels, np.float32) + strength * colours, 0, 255).astype(np.uint8)
