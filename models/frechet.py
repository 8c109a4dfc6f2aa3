"""The Fréchet distance of generated images to real ones, in the feature space of a small classifier.

The FID recipe, with a feature model trained on the same data instead of Inception, which is neither offline
nor suited to 28x28 grayscale: the 128-wide penultimate layer of a small CNN classifier trained on the real
labelled images. Two disjoint halves of the real data give the floor a perfect generator would reach at that
sample size. `FrechetMonitor` measures it after every epoch of the GAN's fit (`dlpipe.pipelines.gan.training`).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from dlpipe.models.dcgan import save_sample_grid, to_gan_range
from dlpipe.models.trace_once import build_before_fit

FEATURE_LAYER = "features"


def build_feature_classifier(image_shape: tuple[int, int, int], num_classes: int, width: int = 128) -> keras.Model:
    """Small CNN on images in [-1, 1]: conv32-pool-conv64-pool-dense(width, named 'features')-softmax."""
    inputs = keras.Input(shape=image_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(width, activation="relu", name=FEATURE_LAYER)(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fid_classifier")


def train_feature_model(images: np.ndarray, labels: np.ndarray, epochs: int = 3, batch_size: int = 64,
                        seed: int = 0) -> keras.Model:
    """Train the feature classifier on real labelled uint8 images; return the model up to its 'features' layer."""
    keras.utils.set_random_seed(seed)
    x = to_gan_range(images)
    classifier = build_feature_classifier(x.shape[1:], int(np.max(labels)) + 1)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    build_before_fit(classifier, (x, np.asarray(labels)))
    classifier.fit(x, np.asarray(labels), epochs=epochs, batch_size=batch_size, verbose=0)
    return feature_model(classifier)


def feature_model(classifier: keras.Model) -> keras.Model:
    """The classifier cut at its penultimate ('features') layer."""
    return keras.Model(classifier.inputs, classifier.get_layer(FEATURE_LAYER).output, name="fid_features")


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets.

    d² = |mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a^½ S_b S_a^½)^½); the matrix
    square roots come from symmetric eigendecompositions, which stay real and
    stable where a general `sqrtm` can return complex noise.
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N, D) feature sets with the same D and N >= 2. Received: {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def image_frechet_distance(features: keras.Model, images_a: np.ndarray, images_b: np.ndarray) -> float:
    """Fréchet distance between two sets of uint8 images in the feature model's space."""
    embed = lambda images: features.predict(to_gan_range(images), batch_size=256, verbose=0)  # noqa: E731
    return frechet_distance(embed(images_a), embed(images_b))


def real_floor(features: keras.Model, images: np.ndarray, seed: int = 0) -> float:
    """The distance between two disjoint random halves of real images: the floor at that sample size."""
    order = np.random.default_rng(seed).permutation(len(images))
    half = len(images) // 2
    return image_frechet_distance(features, images[order[:half]], images[order[half:2 * half]])


class FrechetMonitor(keras.callbacks.Callback):
    """After each epoch: the Fréchet distance of `count` generated images to real ones, into the logs as 'fid'.

    The generated images come from a fixed seed, so epochs compare; an optional
    `grid_dir` gets a sample grid per epoch (epoch_001.png, ...).
    """

    def __init__(self, features: keras.Model, real_images: np.ndarray, count: int = 1000,
                 grid_dir: str | Path | None = None, seed: int = 1):
        super().__init__()
        self.features = features
        self.real_images = np.asarray(real_images)[:count]
        self.count = min(count, len(self.real_images))
        self.grid_dir = Path(grid_dir) if grid_dir else None
        self.seed = seed

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        generated = self.model.generate(self.count, self.seed)
        fid = image_frechet_distance(self.features, self.real_images, generated)
        if logs is not None:
            logs["fid"] = fid
        if self.grid_dir is not None:
            save_sample_grid(generated, self.grid_dir / f"epoch_{epoch + 1:03d}.png")
