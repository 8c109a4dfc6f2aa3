"""Mosaic moves every box with its photo: the tiling's boxes and an augmented window's boxes sit on their objects."""

import numpy as np
import tensorflow as tf
from dlpipe.data.box_augment import BoxAugmentation, augment_group, mosaic_canvas, photo_boxes

SIZE = 64


def _four_photos() -> tuple[tf.Tensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Photo i: grey level 40 (i + 1), one white square box of class i at a different place in each."""
    pixels = np.zeros((4, SIZE, SIZE, 3), np.float32)
    boxes = []
    for i in range(4):
        pixels[i] = 40.0 * (i + 1)
        x, y = 8 + 8 * i, 30 - 6 * i
        pixels[i, y:y + 16, x:x + 16] = 255.0
        boxes.append([[x / SIZE, y / SIZE, (x + 16) / SIZE, (y + 16) / SIZE]])
    return (tf.constant(pixels), tf.ragged.constant(boxes, ragged_rank=1, dtype=tf.float32),
            tf.ragged.constant([[i] for i in range(4)], dtype=tf.int32))


def _centre_values(pixels: np.ndarray, boxes: np.ndarray) -> list[float]:
    side = pixels.shape[0]
    return [float(pixels[int((y1 + y2) / 2 * side), int((x1 + x2) / 2 * side), 0]) for x1, y1, x2, y2 in boxes]


def test_mosaic_canvas_tiles_the_photos_and_moves_their_boxes():
    pixels, boxes, classes = _four_photos()
    canvas, moved, labels = mosaic_canvas(pixels, boxes, classes)
    assert canvas.shape == (2 * SIZE, 2 * SIZE, 3)
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    assert _centre_values(canvas.numpy(), moved.numpy()) == [255.0] * 4
    corners = canvas.numpy()[[0, 0, -1, -1], [0, -1, 0, -1], 0]  # each quadrant keeps its own photo's grey
    assert corners.tolist() == [40.0, 80.0, 120.0, 160.0]


def test_a_mosaic_window_keeps_its_boxes_on_their_objects():
    pixels, boxes, classes = _four_photos()
    spec = BoxAugmentation(flip=True, zoom_min=0.8, zoom_max=1.2, aspect_jitter=0.0, colour=0.0, mosaic=1.0)
    kept = 0
    for seed in range(6):
        tf.random.set_seed(seed)
        out, moved, labels = augment_group(pixels, boxes, classes, spec)
        assert out.shape == (SIZE, SIZE, 3) and len(moved) == len(labels)
        assert np.all((moved.numpy() >= 0.0) & (moved.numpy() <= 1.0))
        centres = _centre_values(out.numpy(), moved.numpy())
        assert all(value > 200.0 for value in centres), centres
        kept += len(centres)
    assert kept > 0


def test_grouped_photos_keep_their_static_shape_in_a_dataset():
    """The training dataset groups photos with ragged_batch (batch axis unknown); the model still sees (S, S, 3)."""
    pixels, boxes, classes = _four_photos()
    photos = tf.data.Dataset.from_tensor_slices((pixels, boxes, classes)).ragged_batch(4)
    spec = BoxAugmentation(mosaic=0.5)
    augmented = photos.map(lambda x, b, c: augment_group(x, b, c, spec))
    assert augmented.element_spec[0].shape == (SIZE, SIZE, 3)
    out, moved, _ = next(iter(augmented))
    assert out.shape == (SIZE, SIZE, 3) and moved.shape[-1] == 4


def test_photo_boxes_keeps_each_photos_boxes_and_classes_together_a_negative_included():
    photos = [[((1, 2, 3, 4), 0), ((5, 6, 7, 8), 2)], [], [((9, 10, 11, 12), 1)]]
    rows = [(b.numpy().tolist(), c.numpy().tolist()) for b, c in photo_boxes(photos)]
    assert rows == [([[1, 2, 3, 4], [5, 6, 7, 8]], [0, 2]), ([], []), ([[9, 10, 11, 12]], [1])]
    assert photo_boxes(photos).element_spec[0].shape.as_list() == [None, 4]
