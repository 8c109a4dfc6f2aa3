"""coco-detector's COCO-pretrained CenterNet-MobileNetV3 as a trainable Keras model, ported op by op.

Why: a user's detector can then start from COCO detection weights (backbone, FPN-style neck and the
box head) instead of ImageNet-only ones. The source is the TF.js graph `scripts/fetch_coco_detector.sh`
keeps (`tfjs/centernet.json` + `.bin` beside coco-detector's SavedModel, read by models/tfjs_graph.py).
Each GraphDef node between the input `tower_0/images` and the last shared feature map becomes one Keras
layer (the mapping: models/tfjs_keras_ops.py): every (fused) convolution a Conv2D / DepthwiseConv2D holding
the graph's weights as trainable variables, with the graph's bias and fused activation (its batch norms
were folded into those weights and biases before TF.js export, so there are no BatchNormalization layers);
Relu/Relu6/Sigmoid, Add/Mul of two tensors, the squeeze-excite Mean and ConcatV2 as Keras layers; scalar
Add/Mul and TF1's bilinear resize as the serialisable layers of models/centernet_layers.py, and each of the
graph's four-node hard-swishes as one HardSwish layer (TFLite's HARD_SWISH op, for full-integer int8). No
Lambda: the model saves as `.keras` and converts to TFLite with builtin ops only.

The graph: input RGB float32 in [0, 255] (no normalisation op: the first convolution takes the pixels), any
square size that is a multiple of 32 (the neck concatenates stride-32 maps upsampled x2 with stride-16 ones).
Features: stride 4, 128 channels, taken where the heat-map, box ("wh") heads split. The heads are
separable 3x3 convolutions: heat map 80 classes + sigmoid; boxes 4 channels x 16 = distances (input
pixels) from the cell's corner (x * 4, y * 4) to the left, top, right and bottom edges. There is no
separate offset head.

Faithful: on dog.jpg the port's features equal the graph's op for op (max abs difference 0.0) but for the
hard-swish's 1/6, exact in HardSwish where the graph stores float16's 0.16662598: that moves the features
by up to 0.023 (of a range of about 3.5), as much as TensorFlow's own graph rewrites (Grappler's remapper,
oneDNN fused kernels) move the graph's output.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAPH_SIZE = 512  # the input size the graph was exported at (its resize constants are for it)
FEATURE_STRIDE = 4
FEATURE_CHANNELS = 128
COCO_CLASSES = 80
INPUT_NODE = "tower_0/images"
HEATMAP_NODE = "tower_0/keypoints"  # sigmoid of the class head, [1, 128, 128, 80]
BOXES_NODE = "tower_0/wh"  # box head x 16, [1, 128, 128, 4]
DETECTIONS_NODE = "tower_0/detections"
NECK_PREFIX = "tower_0/CenternetHead/"  # the neck and heads; everything else before them is the encoder
HEADS = {"heatmap": "tower_0/CenternetHead/centernet_cls_output", "boxes": "tower_0/CenternetHead/centernet_wh_output"}
CLASS_HEAD_INPUT = HEADS["heatmap"] + "/separable_conv2d/depthwise"
BOX_SCALE_NODE = "tower_0/mul/y"  # the graph multiplies the box head's output by this constant (16)
HEATMAP_PRIOR = 0.01  # a new class head starts at this probability everywhere (as models/detector.py's does)
ENCODER_LAYER_NAME = "backbone"  # the nested encoder model, as in models/detector.py
ENCODER_BLOCK_PATTERN = r"^(MobilenetV3\.expanded_conv(?:_\d+)?|extern1)\."  # blocks for unfreeze_top_blocks


def tfjs_dir() -> Path:
    from dlpipe.models.coco_detector import model_dir

    return model_dir() / "tfjs"


def missing_reason() -> str | None:
    """Why the port cannot be built (which set-up step provides the graph), or None when it can."""
    from dlpipe.models.coco_detector import SETUP_STEP

    if (tfjs_dir() / "centernet.json").is_file() and (tfjs_dir() / "centernet.bin").is_file():
        return None
    return f"the COCO detector's TF.js graph is missing: {tfjs_dir()}/centernet.json; run {SETUP_STEP}"


@dataclass(frozen=True)
class _Graph:
    nodes: dict[str, Any]  # name -> NodeDef (fused ops kept fused: one node per Keras layer)
    weights: dict[str, Any]  # const name -> numpy array


@functools.lru_cache(maxsize=1)
def _graph() -> _Graph:
    import tensorflow as tf
    from google.protobuf import json_format

    from dlpipe.errors import DataError
    from dlpipe.models.tfjs_graph import read_model_json, read_weights

    reason = missing_reason()
    if reason:
        raise DataError("coco-detector", reason)
    model = read_model_json(tfjs_dir() / "centernet.json")
    graph = json_format.ParseDict(model["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    return _Graph({node.name: node for node in graph.node}, read_weights(model))


def feature_node() -> str:
    """The graph's last shared feature map: the tensor the class heat-map head's first convolution reads."""
    return _input_names(_graph().nodes[CLASS_HEAD_INPUT])[0]


def _input_names(node: Any) -> list[str]:
    names = [name for name in node.input if not name.startswith("^")]
    bad = [name for name in names if ":" in name and not name.endswith(":0")]
    if bad:
        raise NotImplementedError(f"{node.name} ({node.op}) reads a second output {bad[0]}: not portable")
    return [name.split(":")[0] for name in names]


def _order(graph: _Graph, starts: set[str], ends: list[str]) -> list[str]:
    """The non-constant nodes that `ends` depend on, beyond `starts`, inputs before their readers."""
    ordered: list[str] = []
    seen = set(starts) | set(graph.weights)
    stack = [(name, False) for name in reversed(ends)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            ordered.append(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        stack.append((name, True))
        stack.extend((parent, False) for parent in reversed(_input_names(graph.nodes[name])))
    return ordered


def _layer_name(node_name: str) -> str:
    return node_name.removeprefix("tower_0/").replace("/", ".")


def _build(graph: _Graph, tensors: dict[str, Any], ends: list[str], image_size: int) -> list[Any]:
    """Keras tensors for `ends`, one Keras layer per graph node, starting from the given `tensors`."""
    from dlpipe.models.centernet_layers import HardSwish
    from dlpipe.models.tfjs_keras_ops import hard_swish_operand, port_node

    tensors = dict(tensors)
    for name in _order(graph, set(tensors), ends):
        node = graph.nodes[name]
        x = hard_swish_operand(node, graph.nodes, graph.weights)
        if x is not None:  # its three inner nodes were ported too, but nothing reads them: the model leaves them out
            tensors[name] = HardSwish(name=_layer_name(name))(tensors[x])
            continue
        tensors[name] = port_node(node, _input_names(node), tensors, graph.weights, image_size / GRAPH_SIZE,
                                  _layer_name(name))
    return [tensors[name] for name in ends]


def _check_size(image_size: int) -> None:
    if int(image_size) != image_size or image_size < 32 or image_size % 32:
        raise ValueError(f"`image_size` must be a positive multiple of 32 (the graph's coarsest stride). "
                         f"Received: image_size={image_size!r}")


def encoder_taps() -> list[str]:
    """The encoder's tensors the neck reads (strides 4, 8, 16, 32), in graph order."""
    graph = _graph()
    neck = _order(graph, {INPUT_NODE}, [feature_node()])
    read = {name for node in neck if node.startswith(NECK_PREFIX) for name in _input_names(graph.nodes[node])
            if not name.startswith(NECK_PREFIX) and name not in graph.weights}
    return [name for name in graph.nodes if name in read]


def centernet_encoder(image_size: int = GRAPH_SIZE) -> Any:
    """The MobileNetV3 encoder as its own model (named ENCODER_LAYER_NAME): images -> the four maps the neck reads."""
    import keras

    _check_size(image_size)
    images = keras.Input((image_size, image_size, 3), name="images")
    taps = _build(_graph(), {INPUT_NODE: images}, encoder_taps(), image_size)
    return keras.Model(images, taps, name=ENCODER_LAYER_NAME)


def centernet_features(image_size: int = GRAPH_SIZE) -> Any:
    """The encoder and neck: RGB float [N, S, S, 3] in [0, 255] -> features [N, S/4, S/4, 128].

    S must be a multiple of 32; the weights are the COCO-trained graph's, all trainable. The encoder is
    a nested model (layer ENCODER_LAYER_NAME, blocks ENCODER_BLOCK_PATTERN) so fine-tuning can freeze
    it and unfreeze its top blocks; the neck's layers sit in this model, named after their graph nodes.
    """
    import keras

    encoder = centernet_encoder(image_size)
    images = keras.Input((image_size, image_size, 3), name="images")
    taps = dict(zip(encoder_taps(), encoder(images)))
    (features,) = _build(_graph(), taps, [feature_node()], image_size)
    return keras.Model(images, features, name="centernet_mobilenetv3_features")


def head_weights(head: str) -> dict[str, Any]:
    """A pretrained head's arrays ("heatmap" or "boxes"): 3x3 depthwise kernel, 1x1 kernel and bias."""
    graph = _graph()
    depthwise = _input_names(graph.nodes[HEADS[head] + "/separable_conv2d/depthwise"])
    pointwise = _input_names(graph.nodes[HEADS[head] + "/BiasAdd"])
    return {"depthwise": graph.weights[depthwise[1]], "kernel": graph.weights[pointwise[1]],
            "bias": graph.weights[pointwise[2]]}


def box_scale() -> float:
    """What the graph multiplies the box head's 1x1 output by to get distances in input pixels."""
    return float(_graph().weights[BOX_SCALE_NODE])


def centernet_heads(features: Any, num_classes: int | None = None) -> dict[str, Any]:
    """The heads on a features tensor (stride 4, 128 channels): {"heatmap": [N,h,w,C] in (0,1), "boxes": [N,h,w,4]}.

    The box head is always the pretrained one (distances in input pixels, see the module docstring). The
    class head is the pretrained 80-class COCO one when `num_classes` is None; otherwise its 3x3 depthwise
    filter stays pretrained and its 1x1 classifier is new, with the bias of a HEATMAP_PRIOR probability,
    so a user's classes start from COCO's spatial filter but not from COCO's class scores.
    """
    import keras

    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
        raise ValueError(f"`num_classes` must be a positive integer or None. Received: num_classes={num_classes!r}")
    graph = _graph()
    start = {feature_node(): features}
    boxes, = _build(graph, start, [BOXES_NODE], GRAPH_SIZE)  # the heads hold no resize: the size is unused
    if num_classes is None:
        heatmap, = _build(graph, start, [HEATMAP_NODE], GRAPH_SIZE)
    else:
        spatial = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="heatmap_depthwise")
        x = spatial(features)
        spatial.set_weights([head_weights("heatmap")["depthwise"]])
        prior = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
        x = keras.layers.Conv2D(int(num_classes), 1, bias_initializer=keras.initializers.Constant(prior),
                                name="heatmap_classes")(x)
        heatmap = keras.layers.Activation("sigmoid", name="heatmap")(x)
    return {"heatmap": heatmap, "boxes": boxes}


def centernet_model(image_size: int = GRAPH_SIZE, num_classes: int | None = None) -> Any:
    """Features and heads as one model: images -> {"heatmap", "boxes"} (decode with `decode_detections`)."""
    import keras

    backbone = centernet_features(image_size)
    heads = centernet_heads(backbone.output, num_classes)
    return keras.Model(backbone.input, heads, name="centernet_mobilenetv3")


def decode_detections(heatmap: Any, boxes: Any, max_detections: int = 100) -> Any:
    """The graph's own decoding, batched: [N, k, 6] = x1, y1, x2, y2 (input pixels), score, class index.

    Peaks are cells equal to the 3x3 max of their neighbourhood; the top k over cells x classes are kept.
    """
    import tensorflow as tf

    peaks = heatmap * tf.cast(tf.equal(heatmap, tf.nn.max_pool2d(heatmap, 3, 1, "SAME")), heatmap.dtype)
    shape = tf.shape(heatmap)
    width, classes = shape[2], shape[3]
    scores, index = tf.math.top_k(tf.reshape(peaks, [shape[0], -1]), max_detections)
    cell = index // classes
    x = tf.cast(cell % width, tf.float32) * FEATURE_STRIDE
    y = tf.cast(cell // width, tf.float32) * FEATURE_STRIDE
    ltrb = tf.gather(tf.reshape(boxes, [shape[0], -1, 4]), cell, batch_dims=1)
    corners = [x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]]
    return tf.stack([*corners, scores, tf.cast(index % classes, tf.float32)], axis=-1)
