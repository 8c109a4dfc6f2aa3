"""Training batches of the heat-map head (`model.backbone=centernet_coco`): photos, CenterNet targets, label sets.

The photos are the multi-label task's own decoded pixels (the same code as inference); the boxes come from the
COCO file. Training photos get the detect task's box-aware augmentation with the detect task's defaults (flip,
zoom, colour, mosaic: `pipelines/detect/preprocess.py`), which moves, clips and drops boxes, so a photo's label
set is recomputed from the boxes left in view.
"""

from __future__ import annotations

from typing import Any, Sequence

from dlpipe.data.multilabel import Region


def heatmap_batches(decoded: Any, regions: Sequence[Sequence[Region]], class_names: Sequence[str], image_size: int,
                    batch_size: int, training: bool, seed: int = 0) -> Any:
    """(image, label) pairs with each photo's boxes -> batches of ((images, targets), multi-hot labels)."""
    import tensorflow as tf

    from dlpipe.data.box_augment import augment_group, photo_boxes
    from dlpipe.data.datasets import reshuffled
    from dlpipe.models.centernet_loss import encode_targets
    from dlpipe.models.detector import STRIDE
    from dlpipe.pipelines.detect.preprocess import DetectPreprocessConfig

    count = len(class_names)
    where = photo_boxes([[(box, list(class_names).index(label)) for label, box in photo] for photo in regions])
    ds = tf.data.Dataset.zip((decoded, where)).map(lambda pair, box: (pair[0], *box))
    if training:
        spec = DetectPreprocessConfig().box_augmentation()
        groups = reshuffled(ds, seed).repeat(4).shuffle(max(len(regions), 1), seed=seed).ragged_batch(4)
        ds = groups.map(lambda x, b, c: augment_group(x, b, c, spec), num_parallel_calls=tf.data.AUTOTUNE)
    grid = image_size // STRIDE

    def targets(pixels: Any, photo_boxes: Any, photo_classes: Any) -> Any:
        present = tf.minimum(tf.reduce_sum(tf.one_hot(photo_classes, count), axis=0), 1.0)
        return (pixels, encode_targets(photo_boxes, photo_classes, grid, count)), present

    ds = ds.map(targets, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


__all__ = ["heatmap_batches"]
