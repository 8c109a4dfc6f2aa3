"""Metadata writer for object detectors (MediaPipe's ObjectDetector).

The layout tflite-support's `object_detector.MetadataWriter` writes: one RGB
image input [1, H, W, 3] with NormalizationOptions; four float32 outputs named
in the metadata, in the model's output order: "location" [1, N, 4]
(BoundingBoxProperties: ymin, xmin, ymax, xmax as fractions of the image, so
index [1, 0, 3, 2], type BOUNDARIES, coordinates RATIO), "category" [1, N]
(class index, labels.txt as TENSOR_VALUE_LABELS), "score" [1, N] and "number
of detections" [1]; the first three form the tensor group "detection_result".
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dlpipe.models.tflite_metadata.builder import (
    box_metadata,
    content_dimension,
    image_input_metadata,
    labels_file,
    model_metadata,
    normalization,
    packed_files,
    populate,
    subgraph_metadata,
    tensor_metadata,
)
from dlpipe.models.tflite_metadata.checks import (
    check_image_input,
    model_graph,
    single_tensor,
)

from dlpipe.errors import DlpipeError

ROLES = {"locations": "location", "classes": "category", "scores": "score", "count": "number of detections"}


def object_detector_metadata(flatbuffer: bytes, labels: Sequence[str], mean: Sequence[float] = (0.0,),
                             std: Sequence[float] = (1.0,), *, name: str = "dlpipe object detector",
                             description: str = "Finds objects in the image: boxes, labels, scores.",
                             version: str | None = None, author: str | None = None, license: str | None = None,
                             extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """The .tflite bytes with object-detector metadata; the outputs are told apart by their tensor names.

    The model's output tensor names must contain "locations", "classes", "scores" and "count" (any order).
    """
    graph = model_graph(flatbuffer)
    image = single_tensor(graph, "inputs")
    check_image_input(image)
    outputs = graph["outputs"]
    roles = [_role(output["name"]) for output in outputs]
    if sorted(roles) != sorted(ROLES.values()):
        raise DlpipeError(f"TFLite metadata: an object detector needs four outputs named locations, classes, scores "
                          f"and count; this model has {[o['name'] for o in outputs]}")
    mean, std = normalization(mean, std)
    tensor = image_input_metadata("Input image to be detected (RGB).", mean, std)
    subgraph = subgraph_metadata([tensor], [_output_metadata(role) for role in roles],
                                 output_groups={"detection_result": ["location", "category", "score"]})
    return populate(flatbuffer, model_metadata(subgraph, name, description, version, author, license),
                    packed_files(labels, extra_files))


def _role(tensor_name: str) -> str:
    for key, role in ROLES.items():
        if key in tensor_name:
            return role
    return tensor_name


def _output_metadata(role: str) -> Any:
    if role == "location":
        return content_dimension(box_metadata("location", "The locations of the detected boxes.", [1, 0, 3, 2]), 2)
    if role == "category":
        tensor = tensor_metadata("category", "The categories of the detected boxes.")
        tensor.associatedFiles = [labels_file("value")]
        return content_dimension(tensor, 2)
    if role == "score":
        return content_dimension(tensor_metadata("score", "The scores of the detected boxes."), 2)
    return tensor_metadata("number of detections", "The number of the detected boxes.")
