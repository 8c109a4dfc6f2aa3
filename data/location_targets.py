"""Where each label is in a photo, as a target for every location of a model's feature map.

A multi-label photo read from a COCO file knows its boxes, not only its labels. A head that scores each label at
every location (the lse head) can learn from them: location (i, j) of label c should be on as far as the cell is
covered by a box of c. The targets are drawn at the model's input size as one mask per label, so the training
branch's random flips, rotations, zooms and shifts move them with the photo (`data.augment.augment_with_masks`),
then averaged down to the feature map's grid (the fraction of each cell that is covered).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from dlpipe.data.multilabel import Region


def padded_regions(regions: Sequence[Sequence[Region]], class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-photo boxes as two dense arrays: (photos, K, 4) boxes (x1, y1, x2, y2 fractions) and (photos, K) label
    indices, -1 where a photo has fewer than K boxes (K: the most boxes of any photo, at least 1)."""
    index = {name: i for i, name in enumerate(class_names)}
    most = max([len(boxes) for boxes in regions] + [1])
    boxes = np.zeros((len(regions), most, 4), np.float32)
    classes = np.full((len(regions), most), -1, np.int32)
    for row, photo in enumerate(regions):
        for k, (label, box) in enumerate(photo):
            boxes[row, k] = box
            classes[row, k] = index[label]
    return boxes, classes


def region_masks(boxes: tf.Tensor, classes: tf.Tensor, size: int, num_classes: int) -> tf.Tensor:
    """(size, size, num_classes) float mask: 1 where a pixel's centre lies in a box of that label (stretch resize:
    a box's fractions of the photo are its fractions of the model input)."""
    centres = (tf.range(size, dtype=tf.float32) + 0.5) / size
    inside_x = (centres[None, :] >= boxes[:, 0:1]) & (centres[None, :] < boxes[:, 2:3])  # (K, size)
    inside_y = (centres[None, :] >= boxes[:, 1:2]) & (centres[None, :] < boxes[:, 3:4])
    inside = tf.cast(inside_y[:, :, None] & inside_x[:, None, :], tf.float32)  # (K, size, size)
    labels = tf.one_hot(classes, num_classes, dtype=tf.float32)  # padding (-1) is all zeros
    return tf.minimum(tf.einsum("kyx,kc->yxc", inside, labels), 1.0)


def grid_targets(masks: tf.Tensor, grid: int) -> tf.Tensor:
    """Masks (batch, size, size, labels) -> the fraction of each cell of a grid x grid feature map they cover."""
    return tf.image.resize(masks, (grid, grid), method="area")


def with_region_masks(decoded: tf.data.Dataset, regions: Sequence[Sequence[Region]], class_names: Sequence[str],
                      size: int) -> tf.data.Dataset:
    """(image, label) pairs -> ((image, masks), label), the masks drawn on the fly (never cached: they are cheap,
    and 4 labels at 448 px would hold 3 MB a photo)."""
    boxes, classes = padded_regions(regions, class_names)
    boxes_ds = tf.data.Dataset.from_tensor_slices((boxes, classes))
    count = len(class_names)
    return tf.data.Dataset.zip((decoded, boxes_ds)).map(
        lambda pair, where: ((pair[0], region_masks(where[0], where[1], size, count)), pair[1]),
        num_parallel_calls=tf.data.AUTOTUNE)
