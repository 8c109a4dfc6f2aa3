"""Metadata writers for text classifiers: BERT tokenizer or regex tokenizer (MediaPipe's TextClassifier)."""

from __future__ import annotations

from typing import Mapping, Sequence

from dlpipe.models.tflite_metadata.builder import (
    bert_tokenizer_unit,
    model_metadata,
    packed_files,
    populate,
    regex_tokenizer_unit,
    score_metadata,
    subgraph_metadata,
    tensor_metadata,
)
from dlpipe.models.tflite_metadata.checks import (
    bert_roles,
    check_regex_vocab,
    check_scores,
    check_text_inputs,
    model_graph,
    single_tensor,
)
from dlpipe.models.tflite_metadata.keras_vocabulary import KERAS_DELIMITER_REGEX


def bert_text_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], vocab: bytes, *,
                                  ids_name: str = "ids", mask_name: str = "mask",
                                  segment_ids_name: str = "segment_ids", name: str = "dlpipe text classifier",
                                  description: str = "Classifies the input text into a set of known categories.",
                                  version: str | None = None, author: str | None = None, license: str | None = None,
                                  extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """The .tflite bytes with BERT text-classifier metadata: MediaPipe's TextClassifier then takes raw strings.

    Args:
        flatbuffer: a model with three int32 inputs [1, L] and one score output.
        labels: class names in output order.
        vocab: the WordPiece vocab.txt (one token a line, line number = id; no empty line,
            since MediaPipe skips empty lines and the ids after one would shift).
        ids_name, mask_name, segment_ids_name: the model's input tensor names (an input matches when
            its name equals the given one or contains it once, e.g. "serving_default_ids:0").
        extra_files: more files to pack (name -> bytes).
    """
    graph = model_graph(flatbuffer)
    scores = single_tensor(graph, "outputs")
    check_scores(scores, labels)
    roles = bert_roles(graph["inputs"], {ids_name: "ids", mask_name: "mask", segment_ids_name: "segment_ids"})
    check_text_inputs(graph["inputs"], 3)
    if b"\n\n" in vocab.replace(b"\r\n", b"\n") or vocab.startswith(b"\n"):
        raise ValueError("`vocab` has an empty line: MediaPipe skips it, so the ids after it would shift")
    descriptions = {"ids": "Token ids of the input text.", "mask": "1 for real tokens, 0 for padding.",
                    "segment_ids": "0 for the first sequence, 1 for the second."}
    inputs = [tensor_metadata(role, descriptions[role]) for role in roles]
    subgraph = subgraph_metadata(inputs, [score_metadata(scores)], input_units=[bert_tokenizer_unit()])
    return populate(flatbuffer, model_metadata(subgraph, name, description, version, author, license),
                    packed_files(labels, extra_files, vocab))


def regex_text_classifier_metadata(flatbuffer: bytes, labels: Sequence[str], vocab: bytes,
                                   delimiter_regex: str = KERAS_DELIMITER_REGEX, *,
                                   name: str = "dlpipe text classifier",
                                   description: str = "Classifies the input text into a set of known categories.",
                                   version: str | None = None, author: str | None = None,
                                   license: str | None = None,
                                   extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """The .tflite bytes with regex-tokenizer text-classifier metadata (one int32 token-id input).

    Args:
        flatbuffer: a model with one int32 input [1, L] and one score output.
        labels: class names in output order.
        vocab: "token id" lines holding <PAD> and <UNKNOWN>; `text_vectorization_vocabulary` makes one
            from a Keras TextVectorization vocabulary.
        delimiter_regex: RE2 pattern of what separates tokens (the default mirrors Keras'
            "lower_and_strip_punctuation" + whitespace split).
        extra_files: more files to pack (name -> bytes).
    """
    graph = model_graph(flatbuffer)
    ids, scores = single_tensor(graph, "inputs"), single_tensor(graph, "outputs")
    check_text_inputs([ids], 1)
    check_scores(scores, labels)
    check_regex_vocab(vocab)
    tensor = tensor_metadata("input_text", "Token ids of the input text.")
    tensor.processUnits = [regex_tokenizer_unit(delimiter_regex)]
    subgraph = subgraph_metadata([tensor], [score_metadata(scores)])
    return populate(flatbuffer, model_metadata(subgraph, name, description, version, author, license),
                    packed_files(labels, extra_files, vocab))
