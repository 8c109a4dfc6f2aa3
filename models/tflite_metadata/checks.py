"""What MediaPipe checks when it loads a model, checked first here with a message saying what to change."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from dlpipe.models.tflite_metadata.schema import (
    BERT_INPUTS,
    REGEX_PAD,
    REGEX_UNKNOWN,
    text_of,
)

from dlpipe.errors import DlpipeError


def model_graph(flatbuffer: bytes) -> dict[str, list[dict[str, Any]]]:
    """Name, type, shape and shape signature of the first subgraph's inputs and outputs."""
    from tensorflow.lite.python import schema_py_generated as tfl

    data = bytearray(flatbuffer)
    if not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise DlpipeError("TFLite metadata: not a .tflite flatbuffer (no TFL3 identifier)")
    model = tfl.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() != 1:
        raise DlpipeError(f"TFLite metadata: MediaPipe needs one subgraph, the model has {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    types = {value: key for key, value in vars(tfl.TensorType).items() if not key.startswith("_")}

    def describe(index: int) -> dict[str, Any]:
        tensor = graph.Tensors(index)
        quantization = tensor.Quantization()
        scale = float(quantization.Scale(0)) if quantization is not None and quantization.ScaleLength() else None
        zero = int(quantization.ZeroPoint(0)) if quantization is not None and quantization.ZeroPointLength() else 0
        return {"name": text_of(tensor.Name()), "type": types.get(tensor.Type(), str(tensor.Type())),
                "shape": [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else [],
                "signature": [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else None,
                "scale": scale, "zero_point": zero}

    return {"inputs": [describe(graph.Inputs(i)) for i in range(graph.InputsLength())],
            "outputs": [describe(graph.Outputs(i)) for i in range(graph.OutputsLength())]}


def single_tensor(graph: dict[str, list[dict[str, Any]]], side: str) -> dict[str, Any]:
    if len(graph[side]) != 1:
        raise DlpipeError(f"TFLite metadata: a classifier has one {side[:-1]} tensor; the model has "
                          f"{len(graph[side])}: {[t['name'] for t in graph[side]]}")
    return graph[side][0]


def check_image_input(image: dict[str, Any]) -> None:
    shape = image["shape"]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise DlpipeError(f"TFLite metadata: MediaPipe's ImageClassifier takes one RGB image [1, H, W, 3]; the "
                          f"model's input '{image['name']}' is {shape}: convert with a [1, H, W, 3] input")
    if image["type"] not in ("FLOAT32", "UINT8"):
        raise DlpipeError(f"TFLite metadata: MediaPipe's ImageClassifier takes float32 or uint8 images; the "
                          f"model's input is {image['type']}")


def warn_raw_bytes_mismatch(image: dict[str, Any], mean: list[float], std: list[float]) -> None:
    """MediaPipe feeds a uint8 input the image bytes as they are: the model must read them as (pixel - mean) / std.

    That holds when the input's zero point is the mean and its scale 1 / std (a
    dlpipe model: 0 and 1, from calibration images that reach 0 and 255); LiteRT
    callers that quantise with the tensor's own parameters do not depend on it.
    """
    if image["type"] != "UINT8" or image["scale"] is None or len(set(mean)) != 1 or len(set(std)) != 1:
        return
    if abs(image["scale"] * std[0] - 1.0) > 0.01 or abs(image["zero_point"] - mean[0]) > 1.0:
        warnings.warn(f"TFLite metadata: the uint8 input has scale {image['scale']:.4g} and zero point "
                      f"{image['zero_point']}; MediaPipe feeds raw pixel bytes, which this model reads as "
                      f"(pixel - mean) / std only with scale {1 / std[0]:.4g} and zero point {mean[0]:g}: "
                      "scores in MediaPipe will differ from LiteRT's", stacklevel=3)


def check_scores(scores: dict[str, Any], labels: Sequence[str]) -> None:
    if isinstance(labels, str) or not labels or any(not str(label) or "\n" in str(label) for label in labels):
        raise ValueError(f"`labels` must be a non-empty list of one-line names. Received: labels={labels!r}")
    shape = scores["shape"]
    if len(shape) != 2 or shape[0] != 1 or shape[1] != len(labels):
        raise DlpipeError(f"TFLite metadata: the score output '{scores['name']}' is {shape}, expected "
                          f"[1, {len(labels)}] for {len(labels)} labels")
    if scores["type"] not in ("FLOAT32", "UINT8"):
        raise DlpipeError(f"TFLite metadata: scores must be float32 or uint8; the model's are {scores['type']}")


def check_text_inputs(inputs: list[dict[str, Any]], count: int) -> None:
    if len(inputs) != count:
        raise DlpipeError(f"TFLite metadata: this text classifier takes {count} input tensor(s); the model has "
                          f"{len(inputs)}: {[t['name'] for t in inputs]}")
    for tensor in inputs:
        if tensor["type"] != "INT32" or len(tensor["shape"]) != 2 or tensor["shape"][0] != 1:
            raise DlpipeError(f"TFLite metadata: MediaPipe's TextClassifier takes int32 [1, L] inputs; "
                              f"'{tensor['name']}' is {tensor['type']} {tensor['shape']}")
    if len({tuple(tensor["shape"]) for tensor in inputs}) != 1:
        raise DlpipeError(f"TFLite metadata: the text inputs must have one length: {[t['shape'] for t in inputs]}")


def bert_roles(inputs: list[dict[str, Any]], wanted: dict[str, str]) -> list[str]:
    """The metadata name ("ids", "mask", "segment_ids") of each model input, in the model's input order."""
    roles: list[str] = []
    for tensor in inputs:
        matches = [role for given, role in wanted.items() if tensor["name"] == given] or \
                  [role for given, role in wanted.items() if given in tensor["name"]]
        if len(matches) != 1:
            raise DlpipeError(f"TFLite metadata: input '{tensor['name']}' matches {len(matches)} of the given names "
                              f"{list(wanted)}; pass ids_name, mask_name and segment_ids_name")
        roles.append(matches[0])
    if sorted(roles) != sorted(BERT_INPUTS):
        raise DlpipeError(f"TFLite metadata: the model's inputs {[t['name'] for t in inputs]} map to {roles}, "
                          f"not to one each of {list(BERT_INPUTS)}")
    return roles


def check_regex_vocab(vocab: bytes) -> None:
    tokens = set()
    for number, line in enumerate(vocab.decode("utf-8").splitlines(), start=1):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"`vocab` line {number} is not 'token id': {line!r}")
        tokens.add(parts[0])
    missing = [token for token in (REGEX_PAD, REGEX_UNKNOWN) if token not in tokens]
    if missing:
        raise ValueError(f"`vocab` lacks {missing}: MediaPipe's RegexTokenizer needs both")
