"""What the CenterNet heads learn: target maps drawn from boxes, and the loss that compares the head map with them.

Targets (one photo, `encode_targets`): per class a heat map with an elliptical Gaussian at each object's
centre cell (TTFNet's sigma = 0.54 * side / 6, so a long thin object gets a long thin peak), and at the
centre cell the box's width and height (in cells), the centre's offset within the cell and a mask of 1.
The loss is CenterNet's: the penalty-reduced focal loss on the heat map (alpha 2, beta 4), L1 on size
(weight 0.1) and offset (weight 1) at the centres, each normalised by the number of objects in the batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

GAUSSIAN_ALPHA = 0.54
SIZE_WEIGHT = 0.1
OFFSET_WEIGHT = 1.0


def encode_targets(boxes: tf.Tensor, classes: tf.Tensor, grid: int, num_classes: int) -> tf.Tensor:
    """boxes (M, 4) x1 y1 x2 y2 as fractions, classes (M,) int -> (grid, grid, num_classes + 5) targets."""
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4)) * float(grid)
    classes = tf.reshape(tf.cast(classes, tf.int32), (-1,))
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0
    cell_x = tf.clip_by_value(tf.floor(centre_x), 0.0, grid - 1.0)
    cell_y = tf.clip_by_value(tf.floor(centre_y), 0.0, grid - 1.0)
    sigma_x = tf.maximum(GAUSSIAN_ALPHA * width / 6.0, 0.3)
    sigma_y = tf.maximum(GAUSSIAN_ALPHA * height / 6.0, 0.3)
    axis = tf.range(grid, dtype=tf.float32)
    across = tf.exp(-tf.square(axis[None, :] - cell_x[:, None]) / (2.0 * tf.square(sigma_x[:, None])))  # (M, grid)
    down = tf.exp(-tf.square(axis[None, :] - cell_y[:, None]) / (2.0 * tf.square(sigma_y[:, None])))
    blobs = down[:, :, None] * across[:, None, :]  # (M, grid, grid), exactly 1 at each centre cell
    one_hot = tf.one_hot(classes, num_classes)  # (M, classes)
    heat = tf.reduce_max(blobs[:, :, :, None] * one_hot[:, None, None, :], axis=0)
    heat = tf.reshape(heat, (grid, grid, num_classes))  # also when M is 0 (reduce_max of nothing is -inf)
    heat = tf.maximum(heat, 0.0)
    where = tf.stack([tf.cast(cell_y, tf.int32), tf.cast(cell_x, tf.int32)], axis=1)
    values = tf.stack([width, height, centre_x - cell_x, centre_y - cell_y, tf.ones_like(width)], axis=1)
    regression = tf.tensor_scatter_nd_update(tf.zeros((grid, grid, 5)), where, values)
    return tf.concat([heat, regression], axis=-1)


@keras.saving.register_keras_serializable(package="dlpipe")
class CenterNetLoss(keras.losses.Loss):
    """Focal loss on the heat map + L1 on size and offset at the centres, per object in the batch."""

    def __init__(self, num_classes: int, name: str = "centernet_loss", **kwargs):
        super().__init__(name=name, reduction="sum", **kwargs)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        classes = self.num_classes
        truth, logits = y_true[..., :classes], tf.cast(y_pred[..., :classes], tf.float32)
        positive = tf.cast(truth >= 1.0 - 1e-4, tf.float32)
        probability = tf.sigmoid(logits)
        log_p, log_not_p = -tf.nn.softplus(-logits), -tf.nn.softplus(logits)
        focal = (positive * tf.square(1.0 - probability) * log_p
                 + (1.0 - positive) * tf.pow(1.0 - truth, 4.0) * tf.square(probability) * log_not_p)
        mask = y_true[..., classes + 4:classes + 5]
        objects = tf.maximum(tf.reduce_sum(mask), 1.0)
        regression = tf.cast(y_pred[..., classes:classes + 4], tf.float32)
        size = tf.reduce_sum(tf.abs(regression[..., :2] - y_true[..., classes:classes + 2]) * mask)
        offset = tf.reduce_sum(tf.abs(regression[..., 2:] - y_true[..., classes + 2:classes + 4]) * mask)
        return (-tf.reduce_sum(focal) + SIZE_WEIGHT * size + OFFSET_WEIGHT * offset) / objects

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


__all__ = ["CenterNetLoss", "encode_targets"]
