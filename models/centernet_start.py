"""The COCO-pretrained start of the detect task: the ported CenterNet in models/detector.py's head layout.

Why a layout change: the detect task trains and decodes one head map (N, S/4, S/4, classes + 4) =
heat-map logits, box width and height in cells, and the centre's offset within its cell
(models/detector.py, models/centernet_loss.py). coco-detector's box head instead gives distances in
pixels from the cell's corner to the four edges (l, t, r, b). Both are linear in the head's 1x1
convolution, so the pretrained box head is rewritten exactly: width = (l + r) / 4, height = (t + b) / 4,
offset x = (r - l) / 8, offset y = (b - t) / 8 (stride 4: a cell is 4 pixels, its centre at the corner plus
the offset). The encoder, neck and box head keep COCO's weights; the class head is new for the user's
classes (or COCO's own 80 with `coco_classes=True`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# rows l, t, r, b (pixels) -> columns width, height, offset x, offset y (cells of FEATURE_STRIDE = 4 pixels)
LTRB_TO_SIZE_OFFSET = np.array([[0.25, 0.0, -0.125, 0.0],
                                [0.0, 0.25, 0.0, -0.125],
                                [0.25, 0.0, 0.125, 0.0],
                                [0.0, 0.25, 0.0, 0.125]], np.float32)


def _size_offset_head(features: Any) -> Any:
    """The pretrained box head, rewritten to give width, height and centre offset in cells."""
    import keras

    from dlpipe.models.centernet_port import box_scale, head_weights

    pretrained = head_weights("boxes")
    spatial = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="box_depthwise")
    x = spatial(features)
    spatial.set_weights([pretrained["depthwise"]])
    mapping = box_scale() * LTRB_TO_SIZE_OFFSET
    out = keras.layers.Conv2D(4, 1, dtype="float32", name="box_out")
    x = out(x)
    out.set_weights([np.einsum("hwio,oj->hwij", pretrained["kernel"], mapping), pretrained["bias"] @ mapping])
    return x


def _class_head(features: Any, num_classes: int | None) -> Any:
    """Heat-map logits: COCO's 80 (num_classes None) or a new 1x1 classifier after COCO's 3x3 depthwise filter."""
    import keras

    from dlpipe.models.centernet_port import head_weights

    pretrained = head_weights("heatmap")
    spatial = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="heatmap_depthwise")
    x = spatial(features)
    spatial.set_weights([pretrained["depthwise"]])
    if num_classes is None:
        out = keras.layers.Conv2D(pretrained["kernel"].shape[-1], 1, dtype="float32", name="heatmap_out")
        x = out(x)
        out.set_weights([pretrained["kernel"], pretrained["bias"]])
        return x
    from dlpipe.models.centernet_port import HEATMAP_PRIOR

    prior = float(-np.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))
    return keras.layers.Conv2D(num_classes, 1, dtype="float32", bias_initializer=keras.initializers.Constant(prior),
                               name="heatmap_out")(x)


def build_coco_start(num_classes: int, image_size: int = 320, coco_classes: bool = False) -> tuple[Any, str]:
    """The training model (pixels [0, 255] -> head map (N, S/4, S/4, classes + 4)) and its encoder's block regex.

    Same contract as models/detector.py's build_detector: the encoder is the nested layer
    ENCODER_LAYER_NAME ("backbone"), its blocks match the returned regex. `coco_classes=True` keeps COCO's
    80-class head (then `num_classes` must be 80, in COCO_LABELS order).
    """
    import keras

    from dlpipe.models.centernet_port import COCO_CLASSES, ENCODER_BLOCK_PATTERN, centernet_features

    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}")
    if coco_classes and num_classes != COCO_CLASSES:
        raise ValueError(f"`coco_classes=True` keeps COCO's {COCO_CLASSES} classes. Received: num_classes={num_classes}")
    backbone = centernet_features(image_size)
    features = backbone.output
    head = keras.layers.Concatenate(name="head", dtype="float32")(
        [_class_head(features, None if coco_classes else int(num_classes)), _size_offset_head(features)])
    return keras.Model(backbone.input, head, name="centernet_coco_mobilenetv3"), ENCODER_BLOCK_PATTERN
