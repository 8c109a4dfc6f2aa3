"""One GraphDef node of a TF.js graph model -> one Keras layer, with the graph's weights in it.

Why a mapping and not a wrapped graph: a wrapped graph (models/tfjs_graph.py) runs but cannot be
trained, its constants are not variables. Here every convolution becomes a Conv2D / DepthwiseConv2D
whose kernel and bias are the graph's constants, so gradient descent can move them. TF.js's fused
ops (`_FusedConv2D`, `FusedDepthwiseConv2dNative`: convolution + BiasAdd + activation) map to one
layer with a bias and that activation. Only the ops CenterNet-MobileNetV3 uses are covered; any
other op, or an attribute the mapping does not honour, raises NotImplementedError naming the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ACTIVATIONS = {b"Relu": "relu", b"Relu6": "relu6", b"Sigmoid": "sigmoid", b"Elu": "elu", b"Tanh": "tanh"}
CONVOLUTIONS = {"_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}


def _unsupported(node: Any, why: str) -> NotImplementedError:
    return NotImplementedError(f"{node.name} ({node.op}): {why}; the Keras port does not cover it")


def _conv(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str) -> Any:
    import keras

    fused = [op for op in node.attr["fused_ops"].list.s] if "fused_ops" in node.attr else []
    if fused[:1] not in ([], [b"BiasAdd"]) or len(fused) > 2 or (len(fused) == 2 and fused[1] not in ACTIVATIONS):
        raise _unsupported(node, f"fused ops {fused}")
    if node.attr["data_format"].s not in (b"", b"NHWC") or list(node.attr["explicit_paddings"].list.i):
        raise _unsupported(node, "a data format other than NHWC or explicit paddings")
    strides, dilations = list(node.attr["strides"].list.i), list(node.attr["dilations"].list.i) or [1, 1, 1, 1]
    kernel = weights[inputs[1]]
    options = dict(kernel_size=kernel.shape[:2], strides=tuple(strides[1:3]), dilation_rate=tuple(dilations[1:3]),
                   padding=node.attr["padding"].s.decode().lower(), use_bias=bool(fused),
                   activation=ACTIVATIONS[fused[1]] if len(fused) == 2 else None, name=name)
    if "Depthwise" in node.op:
        layer = keras.layers.DepthwiseConv2D(depth_multiplier=kernel.shape[3], **options)
    else:
        layer = keras.layers.Conv2D(filters=kernel.shape[3], **options)
    output = layer(tensors[inputs[0]])
    layer.set_weights([kernel, weights[inputs[2]]] if fused else [kernel])
    return output


def _binary(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str) -> Any:
    import keras

    from dlpipe.models.centernet_layers import ScalarOp

    op = {"Add": "add", "AddV2": "add", "Mul": "mul"}[node.op]
    constants = [weights[i] for i in inputs if i in weights]
    if not constants:
        merge = keras.layers.Add if op == "add" else keras.layers.Multiply
        return merge(name=name)([tensors[i] for i in inputs])
    if len(constants) > 1 or constants[0].size != 1:
        raise _unsupported(node, f"a constant operand of shape {constants[0].shape} (only scalars)")
    (tensor,) = [tensors[i] for i in inputs if i not in weights]
    return ScalarOp(op, float(constants[0].reshape(())), name=name)(tensor)


def _mean(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str) -> Any:
    import keras

    axes = sorted(int(a) for a in weights[inputs[1]].reshape(-1))
    if axes != [1, 2] or not node.attr["keep_dims"].b:
        raise _unsupported(node, f"a mean over axes {axes} (only the spatial mean with keep_dims)")
    return keras.layers.GlobalAveragePooling2D(keepdims=True, name=name)(tensors[inputs[0]])


def _concat(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str) -> Any:
    import keras

    axis = int(weights[inputs[-1]])
    if axis not in (3, -1):
        raise _unsupported(node, f"concatenation on axis {axis} (only channels)")
    return keras.layers.Concatenate(axis=-1, name=name)([tensors[i] for i in inputs[:-1]])


def _resize(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str, scale: float) -> Any:
    from dlpipe.models.centernet_layers import LegacyBilinearUpsample

    if node.attr["align_corners"].b or node.attr["half_pixel_centers"].b:
        raise _unsupported(node, "align_corners or half_pixel_centers (only TF1's default corners)")
    tensor = tensors[inputs[0]]
    graph_size = [round(int(d) / scale) for d in tensor.shape[1:3]]  # the map's size in the graph's own frame
    target = [int(d) for d in weights[inputs[1]].reshape(-1)]
    factors = {t / g for t, g in zip(target, graph_size)}
    if len(factors) != 1 or int(next(iter(factors))) != next(iter(factors)):
        raise _unsupported(node, f"a resize from {graph_size} to {target} (only one integer factor)")
    return LegacyBilinearUpsample(int(next(iter(factors))), name=name)(tensor)


def _activation(keras_name: str) -> Callable:
    def port(node: Any, inputs: list[str], tensors: dict, weights: dict, name: str) -> Any:
        import keras

        return keras.layers.Activation(keras_name, name=name)(tensors[inputs[0]])

    return port


PORTS: dict[str, Callable] = {"Add": _binary, "AddV2": _binary, "Mul": _binary, "Mean": _mean, "ConcatV2": _concat,
                              "Relu": _activation("relu"), "Relu6": _activation("relu6"),
                              "Sigmoid": _activation("sigmoid"), **{op: _conv for op in CONVOLUTIONS}}


def hard_swish_operand(node: Any, nodes: dict[str, Any], weights: dict) -> str | None:
    """The name of x when `node` is the graph's hard-swish `(x * c) * relu6(x + 3)` (c close to 1/6, either operand
    order), else None: the caller ports the four nodes as one HardSwish layer (models/centernet_layers.py)."""
    if node.op != "Mul" or len(node.input) != 2:
        return None

    def scalar_operand(name: str, op: tuple[str, ...], value: float) -> str | None:
        """x when node `name` is op(x, scalar constant close to `value`)."""
        inner = nodes.get(name)
        if inner is None or inner.op not in op:
            return None
        names = [n.split(":")[0] for n in inner.input if not n.startswith("^")]
        constants = [weights[n] for n in names if n in weights]
        others = [n for n in names if n not in weights]
        if len(constants) != 1 or constants[0].size != 1 or len(others) != 1:
            return None
        return others[0] if abs(float(constants[0].reshape(())) - value) < 1e-3 else None

    for scaled, gate in (node.input, reversed(node.input)):
        x = scalar_operand(scaled.split(":")[0], ("Mul",), 1 / 6)
        relu6 = nodes.get(gate.split(":")[0])
        if x and relu6 is not None and relu6.op == "Relu6" and \
                scalar_operand(relu6.input[0].split(":")[0], ("Add", "AddV2"), 3.0) == x:
            return x
    return None


def port_node(node: Any, inputs: list[str], tensors: dict, weights: dict, scale: float, name: str) -> Any:
    """The Keras tensor for `node`, given the Keras tensors of its inputs (`scale`: Keras size / graph size)."""
    if node.op == "Identity":
        return tensors[inputs[0]]
    if node.op == "ResizeBilinear":
        return _resize(node, inputs, tensors, weights, name, scale)
    if node.op not in PORTS:
        raise _unsupported(node, "no Keras layer is mapped to this op")
    return PORTS[node.op](node, inputs, tensors, weights, name)
