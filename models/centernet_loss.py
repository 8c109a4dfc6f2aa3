"""What the detector's heads learn: target maps drawn from boxes, and the loss that compares the head map with them.

The heat map is CenterNet's (Zhou et al. 2019): per class an elliptical Gaussian at each object's centre
cell (TTFNet's sigma = 0.54 * side / 6, so a long thin object gets a long thin peak), learnt with the
penalty-reduced focal loss (alpha 2, beta 4). Boxes are TTFNet's (Liu et al. 2020, "Training-Time-Friendly
Network"): every cell near an object's centre (inside its box, where its Gaussian is above 0.05) predicts
its distances to the box's four sides, learnt with the GIoU loss weighted by the Gaussian and by the log of
the object's area. Many cells per object train the box, not only the centre, which is what lets a detector
converge in tens of epochs on a CPU rather than hundreds.

Targets per photo (`encode_targets`): (grid, grid, classes + 5) = heat map, the owning object's box
x1 y1 x2 y2 in cells, the cell's regression weight (each object's weights sum to log(1 + its area)).
"""

from __future__ import annotations

import keras
import tensorflow as tf

GAUSSIAN_ALPHA = 0.54
REGRESSION_FLOOR = 0.05  # a cell trains an object's box where that object's Gaussian is at least this
BOX_WEIGHT = 5.0  # TTFNet's weight of the GIoU loss against the heat map's


def encode_targets(boxes: tf.Tensor, classes: tf.Tensor, grid: int, num_classes: int) -> tf.Tensor:
    """boxes (M, 4) x1 y1 x2 y2 as fractions, classes (M,) int -> (grid, grid, num_classes + 5) targets."""
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4)) * float(grid)
    classes = tf.reshape(tf.cast(classes, tf.int32), (-1,))
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cell_x = tf.clip_by_value(tf.floor((boxes[:, 0] + boxes[:, 2]) / 2.0), 0.0, grid - 1.0)
    cell_y = tf.clip_by_value(tf.floor((boxes[:, 1] + boxes[:, 3]) / 2.0), 0.0, grid - 1.0)
    sigma_x = tf.maximum(GAUSSIAN_ALPHA * width / 6.0, 0.3)
    sigma_y = tf.maximum(GAUSSIAN_ALPHA * height / 6.0, 0.3)
    axis = tf.range(grid, dtype=tf.float32)
    across = tf.exp(-tf.square(axis[None, :] - cell_x[:, None]) / (2.0 * tf.square(sigma_x[:, None])))  # (M, grid)
    down = tf.exp(-tf.square(axis[None, :] - cell_y[:, None]) / (2.0 * tf.square(sigma_y[:, None])))
    blobs = down[:, :, None] * across[:, None, :]  # (M, grid, grid), exactly 1 at each centre cell
    heat = tf.reduce_max(blobs[:, :, :, None] * tf.one_hot(classes, num_classes)[:, None, None, :], axis=0)
    heat = tf.maximum(tf.reshape(heat, (grid, grid, num_classes)), 0.0)  # M = 0: reduce_max of nothing is -inf
    return tf.concat([heat, _box_targets(boxes, blobs, axis, grid)], axis=-1)


def _box_targets(boxes: tf.Tensor, blobs: tf.Tensor, axis: tf.Tensor, grid: int) -> tf.Tensor:
    """(grid, grid, 5): per cell the box of the smallest object it trains (x1 y1 x2 y2 in cells) and its weight."""
    centres = axis + 0.5
    inside = ((centres[None, None, :] > boxes[:, 0, None, None]) & (centres[None, None, :] < boxes[:, 2, None, None])
              & (centres[None, :, None] > boxes[:, 1, None, None]) & (centres[None, :, None] < boxes[:, 3, None, None]))
    active = (inside & (blobs >= REGRESSION_FLOOR)) | (blobs >= 1.0 - 1e-6)  # the centre cell always trains
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # one more, never active, object: argmax over the objects works for a photo with none
    padded_active = tf.concat([active, tf.zeros((1, grid, grid), tf.bool)], axis=0)
    padded_area = tf.concat([area, [0.0]], axis=0)
    owner = tf.argmax(tf.where(padded_active, -padded_area[:, None, None], -float("inf")), axis=0)  # smallest wins
    owned = tf.one_hot(owner, tf.shape(padded_area)[0], axis=0) * tf.cast(tf.reduce_any(padded_active, axis=0), tf.float32)
    owned_blob = owned[:-1] * blobs  # (M, grid, grid): each object's Gaussian on the cells it owns
    share = tf.math.divide_no_nan(tf.math.log1p(area), tf.reduce_sum(owned_blob, axis=[1, 2]))  # (M,)
    weight = tf.reduce_sum(owned_blob * share[:, None, None], axis=0)
    box = tf.gather(tf.concat([boxes, tf.zeros((1, 4))], axis=0), owner)  # (grid, grid, 4)
    return tf.concat([box, weight[..., None]], axis=-1)


def cell_boxes(distances: tf.Tensor) -> tf.Tensor:
    """(..., H, W, 4) distances to the left, top, right, bottom sides (in cells) -> x1 y1 x2 y2 in cells."""
    height, width = tf.shape(distances)[-3], tf.shape(distances)[-2]
    x = tf.cast(tf.range(width), tf.float32)[None, :] + 0.5
    y = tf.cast(tf.range(height), tf.float32)[:, None] + 0.5
    return tf.stack([x - distances[..., 0], y - distances[..., 1], x + distances[..., 2], y + distances[..., 3]], -1)


def giou(predicted: tf.Tensor, truth: tf.Tensor) -> tf.Tensor:
    """Generalised IoU of boxes x1 y1 x2 y2 (same shapes, last axis 4)."""
    area = lambda b: tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)  # noqa: E731
    inner = tf.concat([tf.maximum(predicted[..., :2], truth[..., :2]), tf.minimum(predicted[..., 2:], truth[..., 2:])], -1)
    outer = tf.concat([tf.minimum(predicted[..., :2], truth[..., :2]), tf.maximum(predicted[..., 2:], truth[..., 2:])], -1)
    intersection = area(inner)
    union = area(predicted) + area(truth) - intersection
    enclosing = area(outer)
    return intersection / tf.maximum(union, 1e-6) - (enclosing - union) / tf.maximum(enclosing, 1e-6)


@keras.saving.register_keras_serializable(package="dlpipe")
class CenterNetLoss(keras.losses.Loss):
    """Focal loss on the heat map per object + BOX_WEIGHT x the weighted GIoU loss of the cells' boxes."""

    def __init__(self, num_classes: int, name: str = "centernet_loss", **kwargs):
        super().__init__(name=name, reduction="sum", **kwargs)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        from dlpipe.models.detector import side_distances

        classes = self.num_classes
        truth, logits = y_true[..., :classes], tf.cast(y_pred[..., :classes], tf.float32)
        positive = tf.cast(truth >= 1.0 - 1e-4, tf.float32)
        probability = tf.sigmoid(logits)
        log_p, log_not_p = -tf.nn.softplus(-logits), -tf.nn.softplus(logits)
        focal = (positive * tf.square(1.0 - probability) * log_p
                 + (1.0 - positive) * tf.pow(1.0 - truth, 4.0) * tf.square(probability) * log_not_p)
        heat_loss = -tf.reduce_sum(focal) / tf.maximum(tf.reduce_sum(positive), 1.0)
        weight = y_true[..., classes + 4]
        predicted = cell_boxes(side_distances(tf.cast(y_pred[..., classes:classes + 4], tf.float32)))
        box_loss = tf.reduce_sum(weight * (1.0 - giou(predicted, y_true[..., classes:classes + 4])))
        return heat_loss + BOX_WEIGHT * box_loss / tf.maximum(tf.reduce_sum(weight), 1e-6)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


__all__ = ["CenterNetLoss", "cell_boxes", "encode_targets", "giou"]
