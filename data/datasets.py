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
        size = int(ds.cardinality())
        ds = ds.shuffle(size if size > 0 else 1024, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augmenter is not None:
        ds = ds.map(lambda x, y: (augment_batch(augmenter, x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
