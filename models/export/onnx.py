"""ONNX exports: a task's inference graph converted by tf2onnx, for onnxruntime and the servers that run it.

The ONNX file takes what the task's float32 .tflite takes (pixels float32 [N, S, S, 3] for images and
segmentation, int32 token ids [N, L] for text) and names its output `probabilities`, so the
TensorFlow-free inputs of the LiteRT runtime feed it unchanged (`runtimes.OnnxRuntime`). Labels and
preprocessing.json travel beside it like every file artifact's, and inside it as metadata_props
(`dlpipe_labels`, `dlpipe_preprocessing`), so the file alone is enough.

Why tf2onnx in dlpipe's own environment: tf2onnx 1.17 requires protobuf >= 3.20 (no upper pin) and
installs beside TensorFlow 2.21 without changing it; Keras 3's `model.export(format="onnx")` calls the
same converter (`tf2onnx.convert.from_function`) after patching it for NumPy 2, which is done here too.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from dlpipe.errors import DlpipeError
from dlpipe.models import artifacts

ONNX_OPSET = 17  # onnxruntime >= 1.13 runs it; a fixed opset keeps exports alike whatever tf2onnx defaults to
OUTPUT_NAME = "probabilities"


def write_onnx(serve: Callable[..., Any], specs: Sequence[Any], target: Path, bundle: artifacts.Bundle) -> None:
    """Convert the tf.function `serve(*inputs) -> {"probabilities": ...}` over `specs` into `target`.

    A graph tf2onnx cannot convert is one DlpipeError naming the export and tf2onnx's reason.
    """
    import tensorflow as tf

    tf2onnx = _patched_tf2onnx()
    function = tf.function(serve, input_signature=list(specs))
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=list(specs), opset=ONNX_OPSET,
                                                 custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])})
    except Exception as error:  # tf2onnx raises bare ValueError/KeyError/RuntimeError for ops it cannot map
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise _not_converted(bundle, reason) from None
    unsupported = _unsupported_ops(proto)  # tf2onnx keeps an op it cannot map, and onnxruntime then cannot load it
    if unsupported:
        raise _not_converted(bundle, f"no ONNX mapping for {', '.join(unsupported)}")
    for key, value in embedded_side_files(bundle).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "dlpipe (tf2onnx)"
    target.write_bytes(proto.SerializeToString())


def _erfc_as_one_minus_erf(graph: Any, node: Any, name: str, args: list[Any]) -> None:
    """TensorFlow's Erfc (exact GELU: 0.5 x erfc(-x / sqrt 2), in Keras' transformer blocks) as 1 - Erf(x):
    tf2onnx 1.17 has no mapping for Erfc, ONNX has Erf. 1 - erf(x) loses erfc's relative precision where it
    is tiny, but only absolute error (float32 rounding, about 6e-8) reaches a GELU's output, times |x|."""
    import numpy as np
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(graph.get_dtype(node.input[0]))
    one = graph.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype)).output[0]
    erf = graph.make_node("Erf", [node.input[0]]).output[0]
    node.type, node.domain = "Sub", ""
    graph.replace_inputs(node, [one, erf])


def _not_converted(bundle: artifacts.Bundle, reason: str) -> DlpipeError:
    return DlpipeError(f"export: onnx: tf2onnx cannot convert this {bundle.task} model ({reason}); "
                       "export tflite or savedmodel instead")


def _unsupported_ops(proto: Any) -> list[str]:
    """Op types of the converted graph that are not in any ONNX domain onnxruntime runs (left as TensorFlow ops)."""
    import onnx.defs

    def runs(node: Any) -> bool:
        if node.domain == "com.microsoft":  # onnxruntime's own contrib ops
            return True
        return node.domain in ("", "ai.onnx", "ai.onnx.ml") and onnx.defs.has(node.op_type, node.domain)

    return sorted({node.op_type for node in proto.graph.node if not runs(node)})


def embedded_side_files(bundle: artifacts.Bundle) -> dict[str, str]:
    """The side files an ONNX file carries as metadata_props, by the names the .tflite buffers use."""
    return {artifacts.EMBEDDED_LABELS: "".join(f"{name}\n" for name in bundle.class_names),
            artifacts.EMBEDDED_PREPROCESSING: json.dumps(bundle.preprocessing_dict())}


def pixels_exporter(model: Any, target: Path, request: Any, fmt: str) -> None:
    """A Keras model with one float32 image input -> ONNX taking `pixels` [N, H, W, C], as its .tflite does."""
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise DlpipeError(f"export: onnx: expected one image input, the model has {len(model.inputs)}")
    shape = [None, *model.inputs[0].shape[1:]]
    spec = tf.TensorSpec(shape, tf.float32, name="pixels")
    write_onnx(lambda pixels: {OUTPUT_NAME: model(pixels, training=False)}, [spec], target, request.bundle)


def _patched_tf2onnx() -> Any:
    """tf2onnx, patched for NumPy 2 as Keras' own ONNX export patches it (it still uses np.object, np.cast)."""
    try:
        import tf2onnx
    except ImportError:
        raise DlpipeError("export: onnx needs tf2onnx and onnx: pip install tf2onnx onnxruntime") from None
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # a Keras without the patch: tf2onnx may still work on the ops it touches
        return tf2onnx
    with warnings.catch_warnings():  # its `hasattr(np, "object")` warns under NumPy 2
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()
    return tf2onnx
