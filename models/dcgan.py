"""A DCGAN for small grayscale (or colour) images: models, training and samples.

The generator maps a Gaussian latent vector to an image in [-1, 1] (tanh)
through a dense projection and stride-2 transposed convolutions (with
batch-norm and ReLU, the DCGAN recipe); the discriminator mirrors it with
stride-2 convolutions and LeakyReLU and returns one logit. `DCGAN` trains both
with `fit()` through the Keras 3 `train_step` idiom (one discriminator step on
real + generated images, then one generator step through the frozen
discriminator), so Keras callbacks, `BackupAndRestore` and CSV logs just work.

Quality is measured as a Fréchet distance (`dlpipe.models.frechet`).
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from dlpipe.models.tasks.gan import latent_vectors, to_pixels

# ---------------------------------------------------------------------------------------------- models


def _check_size(image_size: int, steps: int, name: str) -> int:
    if steps < 1:
        raise ValueError(f"`{name}` must be at least 1. Received: {name}={steps}")
    start = image_size // 2**steps
    if start < 2 or start * 2**steps != image_size:
        raise ValueError(
            f"`image_size` must be a multiple of 2**{name} (= {2**steps}) and at least {2 * 2**steps}. "
            f"Received: image_size={image_size}, {name}={steps}"
        )
    return start


def build_generator(
    latent_dim: int = 64,
    image_size: int = 28,
    channels: int = 1,
    filters: int = 32,
    upsamplings: int = 2,
    name: str = "generator",
) -> keras.Model:
    """Latent (latent_dim,) -> image (image_size, image_size, channels) in [-1, 1].

    The latent vector is projected to (image_size / 2**upsamplings)^2 positions
    of filters * 2**upsamplings channels, then each stride-2 transposed
    convolution doubles the size and halves the channels (28x28: 7 -> 14 -> 28).
    """
    start = _check_size(image_size, upsamplings, "upsamplings")
    width = filters * 2**upsamplings
    inputs = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(start * start * width, use_bias=False, name="project")(inputs)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((start, start, width), name="reshape")(x)
    for step in range(upsamplings):
        width //= 2
        x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"up{step}")(x)
        x = layers.BatchNormalization(name=f"up{step}_bn")(x)
        x = layers.ReLU(name=f"up{step}_relu")(x)
    outputs = layers.Conv2D(channels, 5, padding="same", activation="tanh", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(
    image_size: int = 28,
    channels: int = 1,
    filters: int = 32,
    downsamplings: int = 2,
    dropout: float = 0.3,
    name: str = "discriminator",
) -> keras.Model:
    """Image in [-1, 1] -> one logit (real > 0). No batch-norm, so real and fake batches never mix statistics."""
    _check_size(image_size, downsamplings, "downsamplings")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    inputs = keras.Input(shape=(image_size, image_size, channels), name="image")
    x = inputs
    for step in range(downsamplings):
        x = layers.Conv2D(filters * 2**step, 4, strides=2, padding="same", name=f"down{step}")(x)
        x = layers.LeakyReLU(0.2, name=f"down{step}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"down{step}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


class DCGAN(keras.Model):
    """Generator + discriminator trained adversarially with `fit(images)`.

    `fit` takes batches of real images in [-1, 1] (`to_gan_range`), alone or as
    (images, labels) pairs whose labels are ignored. Losses are the standard
    non-saturating ones on logits; real targets are smoothed to
    1 - label_smoothing, which keeps the discriminator from saturating early.

    Args:
        generator, discriminator: from `build_generator` / `build_discriminator`.
        label_smoothing: in [0, 0.5).
        seed: seeds the latent draws (their state is saved with the weights).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, label_smoothing: float = 0.1,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"`label_smoothing` must be in [0, 0.5). Received: label_smoothing={label_smoothing}")
        if generator.output_shape[1:] != discriminator.input_shape[1:]:
            raise ValueError(f"generator makes {generator.output_shape[1:]} images, the discriminator takes "
                             f"{discriminator.input_shape[1:]}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(generator.input_shape[-1])
        self.label_smoothing = label_smoothing
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True  # both parts are functional models, built already (BackupAndRestore checks this)

    def compile(self, d_optimizer: keras.optimizers.Optimizer | None = None,
                g_optimizer: keras.optimizers.Optimizer | None = None, **kwargs) -> None:
        """Adam(2e-4, beta_1=0.5) for both by default (the DCGAN paper's setting)."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        # built now, so restoring a backup (before the first step) finds their slots and restores them too;
        # Keras's own `optimizer` (unused by train_step) as well, or fit() builds it later and the backup mismatches
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, latent, training: bool = False):
        return self.generator(latent, training=training)

    def _bce(self, target: float, logits):
        return ops.mean(ops.binary_crossentropy(ops.full(ops.shape(logits), target), logits, from_logits=True))

    def get_config(self) -> dict:
        """Both networks and the settings: `keras.models.clone_model` copies a DCGAN (e.g. out of a strategy)."""
        return {"generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "label_smoothing": self.label_smoothing, "seed": self.seed_generator._initial_seed, "name": self.name}

    def get_compile_config(self) -> None:
        """None: a copy is compiled by whoever trains it (`compile` takes the two optimizers, not Keras' options)."""
        return None

    @classmethod
    def from_config(cls, config: dict) -> "DCGAN":
        config = dict(config)
        for part in ("generator", "discriminator"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)

    def _latent(self, batch):
        """This replica's latent vectors: its slice of one draw for the global batch.

        On one device that is the whole draw; under a tf.distribute strategy (train.distribute) each of
        R replicas takes its own rows of the same R x batch draw, so no two replicas generate alike.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        latent = keras.random.normal((batch * replicas, self.latent_dim), seed=self.seed_generator)
        if replicas == 1:
            return latent
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return latent[replica * batch:(replica + 1) * batch]

    @staticmethod
    def _replica_share(loss):
        """A loss averaged over this replica's batch, divided by the replica count as Keras' own losses are:
        the optimizer sums the replicas' gradients (train.distribute), so their sum is the global batch's."""
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        batch = ops.shape(real)[0]
        fake = self.generator(self._latent(batch), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = self._bce(1.0 - self.label_smoothing, real_logits) + self._bce(0.0, fake_logits)
            share = self._replica_share(d_loss)
        grads = tape.gradient(share, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        latent = self._latent(batch)
        with tf.GradientTape() as tape:
            # the generator wins when the discriminator calls its images real; only its weights move
            g_loss = self._bce(1.0, self.discriminator(self.generator(latent, training=True), training=True))
            share = self._replica_share(g_loss)
        grads = tape.gradient(share, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}

    def generate(self, count: int, seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """`count` generated images as uint8 (N, H, W, C), from a fixed seed (independent of training draws)."""
        return generate_images(self.generator, count, seed, batch_size)


def generate_images(generator: keras.Model, count: int, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """The images of seeds `seed` .. `seed + count - 1` as uint8 (N, H, W, C): those `dlpipe predict` makes."""
    latent = latent_vectors(range(seed, seed + count), int(generator.input_shape[-1]))
    return to_pixels(generator.predict(latent, batch_size=batch_size, verbose=0))


def make_dcgan(image_size: int = 28, channels: int = 1, latent_dim: int = 64, filters: int = 32,
               steps: int = 2, seed: int = 0) -> DCGAN:
    """A compiled DCGAN for image_size x image_size x channels (steps = stride-2 layers each side)."""
    keras.utils.set_random_seed(seed)
    gan = DCGAN(build_generator(latent_dim, image_size, channels, filters, steps),
                build_discriminator(image_size, channels, filters, steps), seed=seed)
    gan.compile()
    return gan


# ---------------------------------------------------------------------------------------------- data


def to_gan_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, H, W) or (N, H, W, C) -> float32 (N, H, W, C) in [-1, 1], the generator's range."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32) / 127.5 - 1.0


def gan_dataset(images: np.ndarray, batch_size: int = 64, seed: int = 0, shuffle: bool = True) -> tf.data.Dataset:
    """uint8 images -> batches in [-1, 1]; the last, partial batch is dropped (full batches keep D and G balanced)."""
    ds = tf.data.Dataset.from_tensor_slices(to_gan_range(images))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------- samples


def image_grid(images: np.ndarray, columns: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 images (N, H, W[, C]) -> one uint8 picture, `columns` wide, with black padding between tiles."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    count, height, width = images.shape[:3]
    rows = math.ceil(count / columns)
    shape = (rows * (height + padding) + padding, columns * (width + padding) + padding) + images.shape[3:]
    grid = np.zeros(shape, np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def save_sample_grid(gan_or_images: DCGAN | np.ndarray, path: str | Path, count: int = 64, columns: int = 8,
                     seed: int = 0, scale: int = 2) -> Path:
    """Write a PNG grid of `count` samples from a DCGAN (fixed seed, so epochs compare) or of given uint8 images."""
    from PIL import Image

    from dlpipe import atomic

    images = gan_or_images.generate(count, seed) if isinstance(gan_or_images, DCGAN) else np.asarray(gan_or_images)
    picture = Image.fromarray(image_grid(images[:count], columns))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing_file(path) as tmp:
        picture.save(tmp, format="PNG")
    return path
