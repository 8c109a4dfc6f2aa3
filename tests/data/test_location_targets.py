"""Box supervision's targets: boxes drawn as per-label masks, moved with the photo by augmentation, then the
fraction of each feature-map cell they cover."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from dlpipe.data.augment import augment_with_masks, build_augmenter
from dlpipe.data.location_targets import grid_targets, padded_regions, region_masks


def test_a_box_is_on_in_its_labels_mask_only_and_padding_draws_nothing():
    boxes, classes = padded_regions([[("b", (0.0, 0.0, 0.5, 1.0))], []], ["a", "b"])
    assert classes.tolist() == [[1], [-1]]
    masks = region_masks(tf.constant(boxes[0]), tf.constant(classes[0]), 8, 2).numpy()
    assert masks[:, :4, 1].all() and not masks[:, 4:, 1].any() and not masks[..., 0].any()
    assert not region_masks(tf.constant(boxes[1]), tf.constant(classes[1]), 8, 2).numpy().any()


def test_grid_targets_are_the_covered_fraction_of_each_cell():
    masks = np.zeros((1, 8, 8, 1), np.float32)
    masks[0, :2, :3] = 1.0  # the top-left 4x4 cell covered over 2x3 of its 16 pixels
    cells = grid_targets(tf.constant(masks), 2).numpy()[0, ..., 0]
    np.testing.assert_allclose(cells, [[6 / 16, 0], [0, 0]], atol=1e-6)


def test_augmentation_moves_the_masks_with_their_photo():
    images = np.zeros((4, 32, 32, 3), np.float32)
    images[:, 4:12, 2:10] = 255.0  # a bright square
    masks = (images[..., :1] > 0).astype(np.float32)
    augmenter = build_augmenter(flip="horizontal_and_vertical", rotation=0.1, zoom=0.2, translation=0.2,
                                brightness=0.2, seed=3)
    moved, moved_masks = (t.numpy() for t in augment_with_masks(augmenter, tf.constant(images), tf.constant(masks)))
    assert moved.shape == images.shape and moved_masks.shape == masks.shape
    assert not np.allclose(moved_masks, masks)  # the geometry did move them
    for photo, mask in zip(moved, moved_masks[..., 0]):
        bright = photo.mean(-1) > 128
        # the square is where its mask is: brightness moved the photo only, never the mask's extent
        assert (bright == (mask > 0.5)).mean() > 0.97
