"""tf.data pipelines from file lists: decode in parallel, cache, then shuffle, batch, augment."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from dlpipe.data.augment import augment_batch
from dlpipe.data.preprocess import ImagePreprocessing, load_image


def decoded_images(
    paths: Sequence[str], labels: Sequence[int] | None, prep: ImagePreprocessing, cache: bool = True
) -> tf.data.Dataset:
    """Unbatched (image, label) pairs, or images alone when labels is None.

    Decoding runs in parallel; with `cache` the preprocessed images stay in
    memory after the first pass, so later epochs skip the decoding.
    """
    from dlpipe.data.images import tf_path

    paths = [tf_path(path) for path in paths]  # bytes: file names need not be valid UTF-8
    if labels is not None:
        ds = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
        ds = ds.map(lambda p, y: (load_image(p, prep), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = tf.data.Dataset.from_tensor_slices(list(paths))
        ds = ds.map(lambda p: load_image(p, prep), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.cache() if cache else ds


def batched(
    ds: tf.data.Dataset,
    batch_size: int,
    training: bool = False,
    augmenter: keras.Sequential | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batch a decoded dataset; the training branch reshuffles each epoch and augments."""
    if training:
        ds = reshuffled(ds, seed)
    ds = ds.batch(batch_size)
    if training and augmenter is not None:
        ds = ds.map(lambda x, y: (augment_batch(augmenter, x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def batched_with_masks(
    ds: tf.data.Dataset,
    batch_size: int,
    grid: int,
    training: bool = False,
    augmenter: keras.Sequential | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """`batched` for ((image, masks), label) pairs: the masks follow the photo's augmentation, then become the
    fraction of each cell of a grid x grid feature map they cover (`data.location_targets`)."""
    from dlpipe.data.augment import augment_with_masks
    from dlpipe.data.location_targets import grid_targets

    if training:
        ds = reshuffled(ds, seed)
    ds = ds.batch(batch_size)

    def targets(inputs: tuple[tf.Tensor, tf.Tensor], label: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
        images, masks = inputs
        if training and augmenter is not None:
            images, masks = augment_with_masks(augmenter, images, masks)
        return (images, grid_targets(masks, grid)), label

    return ds.map(targets, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def reshuffled(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """The whole dataset shuffled again every epoch (a 1024-example buffer when its size is unknown)."""
    size = int(ds.cardinality())
    return ds.shuffle(size if size > 0 else 1024, seed=seed, reshuffle_each_iteration=True)
