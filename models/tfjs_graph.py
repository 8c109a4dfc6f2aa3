"""A TF.js graph model (model.json + weight shards) as a TensorFlow function and SavedModel.

Why our own reader: TensorFlow.js's own Python converter goes the other way
only (TensorFlow -> TF.js), and the one maintained reverse converter on the
package index, tfjs-graph-converter 1.6.3, needs the whole `tensorflowjs`
package, which pulls TensorFlow 2.19, JAX, Flax and TF Decision Forests: in its
own environment that is 2.9 GB and 10 minutes to install on this machine, and
it then fails at import (TF-DF's generated protobuf code needs protobuf 6,
TensorFlow 2.19 pins protobuf 5). The format is small, so it is read here:

- `modelTopology` is a TensorFlow GraphDef written as JSON (protobuf's JSON
  mapping), parsed with protobuf's own `json_format`;
- `weightsManifest` lists the constants stored in the binary shards, in
  order: name, shape, dtype, and for quantised weights the stored dtype
  (float16, or uint8/uint16 with scale and min), which are expanded back to
  their original dtype and put into the graph's Const nodes;
- TF.js's optimiser fuses ops into `FusedDepthwiseConv2dNative` (no
  TensorFlow kernel) and `_FusedConv2D` (a TensorFlow-internal op the TFLite
  converter does not take): both are split back into the convolution, BiasAdd
  and the activation, which is what `tfjs-graph-converter --compat_mode=tflite` does.

Run as `python -m dlpipe.models.tfjs_graph MODEL_DIR OUT_DIR` it writes a
SavedModel whose `serving_default` maps the model's input to its outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

QUANTIZED_DTYPES = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}
PLAIN_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
ACTIVATIONS = {b"Relu": "Relu", b"Relu6": "Relu6", b"Elu": "Elu", b"Sigmoid": "Sigmoid", b"Tanh": "Tanh"}


def read_model_json(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir)
    path = path if path.is_file() else next(iter(sorted(path.glob("*.json"))), path / "model.json")
    return {"path": path, **json.loads(path.read_text(encoding="utf-8"))}


def read_weights(model: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every weight of the manifest, dequantised to its original dtype, by name."""
    folder = Path(model["path"]).parent
    weights: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        data = b"".join((folder / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            stored = np.dtype(QUANTIZED_DTYPES[quant["dtype"]] if quant else PLAIN_DTYPES[spec["dtype"]])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            array = np.frombuffer(data, stored, count, offset).reshape(spec["shape"])
            offset += count * stored.itemsize
            if quant and quant["dtype"] != "float16":
                array = array.astype(np.float32) * quant["scale"] + quant["min"]
            weights[spec["name"]] = array.astype(PLAIN_DTYPES[spec["dtype"]])
        if offset != len(data):
            raise ValueError(f"{folder}: the weight shards hold {len(data)} bytes, the manifest describes {offset}")
    return weights


def graph_def(model: dict[str, Any]) -> Any:
    """The model's GraphDef with its weights in the Const nodes and TF.js-only fused ops split."""
    import tensorflow as tf
    from google.protobuf import json_format

    graph = json_format.ParseDict(model["modelTopology"], tf.compat.v1.GraphDef(), ignore_unknown_fields=True)
    weights = read_weights(model)
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
            node.attr["dtype"].type = tf.as_dtype(weights[node.name].dtype).as_datatype_enum
    missing = [n.name for n in graph.node if n.op == "Const" and not n.attr["value"].HasField("tensor")]
    if missing:
        raise ValueError(f"{model['path']}: no weights for {len(missing)} constants, e.g. {missing[0]}")
    return _split_fused_ops(graph)


def _split_fused_ops(graph: Any) -> Any:
    """_FusedConv2D / FusedDepthwiseConv2dNative (with BiasAdd and an activation) -> three plain ops."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph.versions)
    out.library.CopyFrom(graph.library)
    for node in graph.node:
        if node.op not in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            out.node.append(node)
            continue
        fused = list(node.attr["fused_ops"].list.s)
        if not fused or fused[0] != b"BiasAdd" or len(fused) > 2 or (len(fused) == 2 and fused[1] not in ACTIVATIONS):
            raise ValueError(f"{node.name}: fused ops {fused} are not supported (only BiasAdd and an activation)")
        conv = out.node.add()
        conv.name = node.name + "/conv" if len(fused) > 0 else node.name
        conv.op = "Conv2D" if node.op == "_FusedConv2D" else "DepthwiseConv2dNative"
        conv.input.extend(node.input[:2])
        keep = ("T", "strides", "padding", "dilations", "data_format", "explicit_paddings")
        keep += ("use_cudnn_on_gpu",) if conv.op == "Conv2D" else ()
        for key in keep:
            if key in node.attr:
                conv.attr[key].CopyFrom(node.attr[key])
        if "T" not in conv.attr:
            conv.attr["T"].type = tf.float32.as_datatype_enum
        last = out.node.add()
        last.name = node.name if len(fused) == 1 else node.name + "/bias"
        last.op = "BiasAdd"
        last.input.extend([conv.name, node.input[2]])
        last.attr["T"].CopyFrom(conv.attr["T"])
        if len(fused) == 2:
            act = out.node.add()
            act.name, act.op = node.name, ACTIVATIONS[fused[1]]
            act.input.append(last.name)
            act.attr["T"].CopyFrom(conv.attr["T"])
    return out


def signature_names(model: dict[str, Any], outputs: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The model's input and output node names, from its signature (outputs may be narrowed)."""
    signature = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature") or {}
    inputs = [spec.get("name", key).split(":")[0] for key, spec in signature.get("inputs", {}).items()]
    names = [spec.get("name", key).split(":")[0] for key, spec in signature.get("outputs", {}).items()]
    if not inputs:
        inputs = [n["name"] for n in model["modelTopology"]["node"] if n["op"] == "Placeholder"]
    return inputs, list(outputs) if outputs else names


def load_function(model_dir: str | Path, outputs: Sequence[str] | None = None) -> Any:
    """A concrete TF function: the model's inputs (positional, signature order) -> a dict of its outputs."""
    import tensorflow as tf

    model = read_model_json(model_dir)
    graph = graph_def(model)
    inputs, names = signature_names(model, outputs)
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph, name=""), [])
    return wrapped.prune(feeds=[f"{name}:0" for name in inputs],
                         fetches={name.split("/")[-1]: wrapped.graph.get_tensor_by_name(f"{name}:0") for name in names})


def write_savedmodel(model_dir: str | Path, out_dir: str | Path, outputs: Sequence[str] | None = None) -> Path:
    """The graph model as a SavedModel (`serving_default`: the input's short name -> each output's short name)."""
    import tensorflow as tf

    model = read_model_json(model_dir)
    inputs, _ = signature_names(model, outputs)
    function = load_function(model_dir, outputs)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name.split("/")[-1]) for t, name in zip(function.inputs, inputs)]

    module = tf.Module()
    module.graph_function = function

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return function(*args)

    module.serve = serve
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": serve})
    return Path(out_dir)


def main(argv: Sequence[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m dlpipe.models.tfjs_graph MODEL_DIR OUT_DIR [OUTPUT_NODE,...]", file=sys.stderr)
        return 2
    from dlpipe.quiet import quiet_tensorflow

    quiet_tensorflow()

    outputs = argv[2].split(",") if len(argv) == 3 else None
    print(f"wrote {write_savedmodel(argv[0], argv[1], outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
