"""Metadata writer for image classifiers (MediaPipe's ImageClassifier)."""

from __future__ import annotations

from typing import Mapping, Sequence

from dlpipe.models.tflite_metadata.builder import (
    image_input_metadata,
    model_metadata,
    normalization,
    packed_files,
    populate,
    score_metadata,
    subgraph_metadata,
)
from dlpipe.models.tflite_metadata.checks import (
    check_image_input,
    check_scores,
    model_graph,
    single_tensor,
    warn_raw_bytes_mismatch,
)


def image_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], mean: Sequence[float] = (0.0,),
                              std: Sequence[float] = (1.0,), *, name: str = "dlpipe image classifier",
                              description: str = "Identifies the most prominent object in the image.",
                              version: str | None = None, author: str | None = None, license: str | None = None,
                              extra_files: Mapping[str, bytes] | None = None,
                              score_threshold: float | None = None) -> bytes:
    """The .tflite bytes with standard image-classifier metadata, labels and `extra_files` packed in.

    Args:
        flatbuffer: a converted model: one RGB input [1, H, W, 3] (float32 or uint8), one score output.
        labels: class names in output order.
        mean, std: one value or one per channel; the model's float input is (pixel - mean) / std
            for pixels in [0, 255]. dlpipe's models normalise inside, hence the defaults 0 and 1.
        extra_files: more files to pack (name -> bytes), e.g. preprocessing.json.
        score_threshold: a global score threshold (ScoreThresholdingOptions) MediaPipe applies by default, e.g.
            0.5 for a multi-label model whose per-label thresholds are folded into its scores.

    Raises:
        DlpipeError: the model's tensors are not what MediaPipe's ImageClassifier accepts.
        ValueError: bad labels, mean/std or file names.
    """
    graph = model_graph(flatbuffer)
    image, scores = single_tensor(graph, "inputs"), single_tensor(graph, "outputs")
    check_image_input(image)
    check_scores(scores, labels)
    mean, std = normalization(mean, std)
    warn_raw_bytes_mismatch(image, mean, std)
    tensor = image_input_metadata("Input image to be classified (RGB).", mean, std, uint8=image["type"] == "UINT8")
    subgraph = subgraph_metadata([tensor], [score_metadata(scores, score_threshold)])
    return populate(flatbuffer, model_metadata(subgraph, name, description, version, author, license),
                    packed_files(labels, extra_files))
