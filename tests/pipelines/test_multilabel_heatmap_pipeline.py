"""The heat-map head's training half: its batches (photos, CenterNet targets, label sets from boxes) and recipes."""

from __future__ import annotations

import numpy as np

REGIONS = [[("a", (0.1, 0.1, 0.4, 0.4))], [("b", (0.5, 0.5, 0.9, 0.9)), ("a", (0.0, 0.6, 0.3, 0.95))], [],
           [("b", (0.2, 0.3, 0.6, 0.5))], [("a", (0.6, 0.1, 0.9, 0.3)), ("a", (0.1, 0.6, 0.3, 0.9))], [],
           [("b", (0.05, 0.05, 0.3, 0.3))], [("a", (0.4, 0.4, 0.6, 0.6)), ("b", (0.7, 0.7, 0.95, 0.95))]]


def decoded(count: int = len(REGIONS)):
    import tensorflow as tf

    photos = np.random.default_rng(0).uniform(0, 255, (count, 64, 64, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((photos, np.zeros((count, 2), np.int64)))


def test_validation_batches_hold_one_centre_per_box_and_the_photos_labels():
    from dlpipe.pipelines.image_multilabel.heatmap_batches import heatmap_batches

    batches = list(heatmap_batches(decoded(), REGIONS, ["a", "b"], 64, 4, training=False))
    assert len(batches) == 2
    targets = np.concatenate([t.numpy() for (_, t), _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert targets.shape == (8, 16, 16, 2 + 5)
    for photo, regions in enumerate(REGIONS):
        for index, name in enumerate(["a", "b"]):
            boxes = sum(label == name for label, _ in regions)
            assert int((targets[photo, ..., index] >= 1 - 1e-4).sum()) == boxes  # one peak per box
            assert labels[photo, index] == (boxes > 0)


def test_augmented_training_photos_are_labelled_by_the_boxes_left_in_view():
    from dlpipe.pipelines.image_multilabel.heatmap_batches import heatmap_batches

    seen = 0
    for (photos, targets), labels in heatmap_batches(decoded(), REGIONS, ["a", "b"], 64, 4, training=True, seed=3):
        assert photos.shape[1:] == (64, 64, 3) and targets.shape[1:] == (16, 16, 7)
        peaks = (targets.numpy()[..., :2] >= 1 - 1e-4).any(axis=(1, 2))
        np.testing.assert_array_equal(labels.numpy() > 0, peaks)  # a label exactly where a box's centre is drawn
        seen += len(labels)
    assert seen == len(REGIONS)  # one augmented photo per photo and epoch (mosaics included)


def test_auto_picks_the_heat_map_head_for_boxes_and_the_lse_head_for_a_csv(tmp_path):
    from dlpipe.pipelines.api import resolve_config

    (tmp_path / "labels.csv").write_text("path,labels\na.png,red\n")
    (tmp_path / "coco").mkdir()
    with_boxes = resolve_config("image-multilabel", data=str(tmp_path / "coco"))
    assert with_boxes["model"].backbone == "centernet_coco" and with_boxes["model"].image_size == 320
    assert with_boxes["train"].refit is False and with_boxes["train"].ema > 0 and not with_boxes["augment"].enabled
    labels_only = resolve_config("image-multilabel", data=str(tmp_path / "labels.csv"))
    assert labels_only["model"].backbone == "efficientnet_lite0" and labels_only["model"].image_size == 448
    assert labels_only["train"].refit == "auto" and labels_only["train"].ema == 0
    chosen = resolve_config("image-multilabel", data=str(tmp_path / "coco"), sets=["model.backbone=efficientnet_lite0",
                                                                                   "train.finetune_epochs=7"])
    assert chosen["model"].backbone == "efficientnet_lite0" and chosen["train"].finetune_epochs == 7
    assert chosen["model"].image_size == 448  # no recipe of the heat-map head under an explicit other backbone
