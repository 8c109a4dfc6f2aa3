"""The COCO-pretrained start of the detect task: the ported CenterNet in models/detector.py's head layout.

Why a layout change: the detect task trains and decodes one head map (N, S/4, S/4, classes + 4) =
heat-map logits and, per cell, the logarithms of its distances (in cells, from the cell's centre) to the
box's left, top, right and bottom sides (TTFNet's boxes: models/detector.py side_distances = exp(clip(raw,
-6, 6)), models/centernet_loss.py). coco-detector's box head gives the same four distances, linearly, in
pixels from the cell's corner (x * 4, y * 4): from the centre (2 px further right and down) that is
(l + 2, t + 2, r - 2, b - 2) / 4 cells. That map is linear, so it is folded into the head's 1x1
convolution, and a ClampedLog layer (floor e^-6, the decoder's lower clip) gives the logarithms: at the
start the detect task decodes exactly COCO's boxes. The encoder, neck and box head keep COCO's weights; the
class head is new for the user's classes (or COCO's own 80 with `coco_classes=True`).

Learning rate: the port has no batch norm (the export folded it into the convolutions), so it takes a
smaller step than a batch-normed encoder. Measured on detection_fashion fold 0 (Adam, all layers
trainable, batch 16): at 1e-3 the loss went from 6.5 to 3.7e4 in the first epoch; at LEARNING_RATE
(2e-4, cosine decay) it fell steadily.

Full-integer int8 (the detect task's tflite-int8: the network int8, the decoding float): the encoder's
activations are heavy-tailed (after the third block: median |x| 5.8, 99th percentile 34, maximum 124; no batch
norm, the input normalisation folded into the first convolution), so int8's step at that range (about 1) is a
sixth of a typical value. With the graph's hard-swish as four ops, each rounded to 8 bits, post-training int8
lost every box and XNNPACK aborted; as one HARD_SWISH op (models/centernet_layers.py) it runs and keeps most
boxes: fold 0 of detection_fashion, mAP 0.490 against float's 0.582, and 0.528 with every activation range
narrowed to its 99.99th percentile (models/export/percentile_ranges.py, what the export does). The channels'
ranges differ only 2-3x, so per-channel equalisation would not help; fine-tuning with int8-rounded activations
inside those narrowed ranges (4 epochs, an experiment) reached 0.553. 16x8 quantisation (int16 activations) keeps
COCO's detections (heat map within 0.074 on darknet's photos).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

CENTRE_SHIFT_PX = np.array([2.0, 2.0, -2.0, -2.0], np.float32)  # corner -> centre of a 4-pixel cell, per side
DISTANCE_FLOOR = math.exp(-6.0)  # the detect task's decoder clips log-distances to [-6, 6]
LEARNING_RATE = 2e-4  # Adam, all layers trainable (see the module docstring)


def _side_distance_head(features: Any) -> Any:
    """The pretrained box head, answering the log of each side's distance from the cell's centre, in cells."""
    import keras

    from dlpipe.models.centernet_layers import ClampedLog
    from dlpipe.models.centernet_port import FEATURE_STRIDE, box_scale, head_weights

    pretrained = head_weights("boxes")
    spatial = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="box_depthwise")
    x = spatial(features)
    spatial.set_weights([pretrained["depthwise"]])
    out = keras.layers.Conv2D(4, 1, dtype="float32", name="box_distances")
    x = out(x)
    scale = box_scale() / FEATURE_STRIDE
    out.set_weights([pretrained["kernel"] * scale, pretrained["bias"] * scale + CENTRE_SHIFT_PX / FEATURE_STRIDE])
    return ClampedLog(DISTANCE_FLOOR, dtype="float32", name="box_log_distances")(x)


def _class_head(features: Any, num_classes: int | None) -> Any:
    """Heat-map logits: COCO's 80 (num_classes None) or a new 1x1 classifier after COCO's 3x3 depthwise filter."""
    import keras

    from dlpipe.models.centernet_port import HEATMAP_PRIOR, head_weights

    pretrained = head_weights("heatmap")
    spatial = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="heatmap_depthwise")
    x = spatial(features)
    spatial.set_weights([pretrained["depthwise"]])
    if num_classes is None:
        out = keras.layers.Conv2D(pretrained["kernel"].shape[-1], 1, dtype="float32", name="heatmap_out")
        x = out(x)
        out.set_weights([pretrained["kernel"], pretrained["bias"]])
        return x
    prior = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
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
        [_class_head(features, None if coco_classes else int(num_classes)), _side_distance_head(features)])
    return keras.Model(backbone.input, head, name="centernet_coco_mobilenetv3"), ENCODER_BLOCK_PATTERN
