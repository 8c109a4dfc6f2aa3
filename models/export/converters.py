"""What every exporter shares: a SavedModel archive that stores each weight once, and TFLite conversion.

TFLite quantisation, in one place for every task: "none" (float32), "float16"
(half-size weights), "dynamic" (int8 weights, float compute) and "int8"
(full-integer, uint8 in and out, calibrated on representative inputs). Inside
`keep_fragile_in_float()`, "int8" is selective instead: float in and out, and the
layers whose quantisation error is largest stay float (QuantizationDebugger's
denylist), for `dlpipe export --quantize auto`.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import io
from typing import Any, Callable, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# a layer whose int8 output error (root mean square, in units of its quantisation step) is above this stays float:
# the threshold TensorFlow's selective-quantisation guide uses
FRAGILE_RMSE_PER_STEP = 0.7
FRAGILE_AT_LEAST = 3  # when no layer is above the threshold, the worst few still stay float (else it is plain int8)
DEBUG_SAMPLES = 32  # calibration inputs the debugger measures each layer's error on
_SELECTIVE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("dlpipe_selective_int8", default=None)


def quantization_of(fmt: str) -> str:
    """"tflite-int8" -> "int8"; "tflite" -> "none"."""
    return fmt.partition("-")[2] or "none"


def export_archive(model: keras.Model) -> keras.export.ExportArchive:
    """A `keras.export.ExportArchive` tracking `model` that writes each weight once.

    Keras 3's `track()` records the Keras Variable wrappers while `write_out()` also
    records the raw tf.Variables its endpoints capture; TensorFlow dedupes by object,
    so every weight was written twice: twice the disk and twice the memory wherever
    the SavedModel is loaded (keras-team/keras#23553, open). Tracking the raw
    tf.Variables makes both lists hold the same objects.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    tracked = archive._tf_trackable  # the lists `track()` fills; Keras offers no public handle on them
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(tracked, name, [getattr(variable, "value", variable) for variable in getattr(tracked, name)])
    return archive


def write_keras(model: keras.Model, target: Any, request: Any, fmt: str) -> None:
    """The `keras` exporter of every task: the model as a .keras file (custom layers registered by dlpipe)."""
    model.save(target)


def labelled_outputs(probabilities: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
    """What every dlpipe SavedModel signature returns: the probabilities, the best label and its score."""
    best = tf.argmax(probabilities, axis=1)
    return {"probabilities": probabilities, "label": tf.gather(tf.constant(class_names), best),
            "score": tf.reduce_max(probabilities, axis=1)}


def convert(converter: tf.lite.TFLiteConverter, quantize: str,
            representative: Iterable[np.ndarray] | None = None) -> bytes:
    """Run `converter` with the quantisation settings of `quantize`; int8 needs `representative` inputs."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        samples = [np.asarray(item, np.float32)[None] for item in representative or ()]
        if not samples:
            raise ValueError("int8 quantisation needs representative inputs (a sample of the training data)")
        converter.representative_dataset = _calibration(samples)
        if _SELECTIVE.get() is not None:  # float in/out, the fragile layers float: see _quiet_convert
            return _quiet_convert(converter)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in/out; the input scale comes from calibration: callers quantise with the input
        # tensor's scale and zero point, as dlpipe.models.runtimes does
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return _quiet_convert(converter)


def _quiet_convert(converter: tf.lite.TFLiteConverter) -> bytes:
    """The converter prints hundreds of lines to stdout/stderr from C++: keep them out of the user's terminal."""
    import warnings

    from dlpipe.quiet import captured_output

    kept = _SELECTIVE.get()
    if kept is not None and getattr(converter, "representative_dataset", None) is not None:
        return _selective_int8(converter, kept)  # an int8 conversion inside keep_fragile_in_float()
    with captured_output(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # uint8 in/out is what we ask for
        return converter.convert()


def _calibration(samples: list[np.ndarray]) -> Callable[[], Iterable[list[np.ndarray]]]:
    def generate() -> Iterable[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    return generate


@contextlib.contextmanager
def keep_fragile_in_float() -> Iterator[list[str]]:
    """Within this block "int8" converts selectively; yields the list the denylisted layer names land in."""
    kept: list[str] = []
    token = _SELECTIVE.set(kept)
    try:
        yield kept
    finally:
        _SELECTIVE.reset(token)


def _selective_int8(converter: tf.lite.TFLiteConverter, kept: list[str]) -> bytes:
    """int8 with float in/out whose most error-prone layers stay float (names appended to `kept`).

    QuantizationDebugger quantises every layer, compares each layer's output with the float model's on
    the first DEBUG_SAMPLES calibration inputs, and the layers worst in units of their own quantisation
    step are denylisted. Any exporter's int8 converter (optimisations and representative data set) works.
    """
    import itertools
    import warnings

    from dlpipe.quiet import captured_output

    calibration = converter.representative_dataset

    def debug() -> Iterable[list[np.ndarray]]:
        return itertools.islice(calibration(), DEBUG_SAMPLES)

    with captured_output(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # float in/out: asked for
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")  # the debugger's own use
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    errors = sorted(((float(row["mean_squared_error"]) ** 0.5 / float(row["scale"]), row["tensor_name"])
                     for row in csv.DictReader(dump) if float(row["scale"] or 0) > 0), reverse=True)
    fragile = [name for error, name in errors if error > FRAGILE_RMSE_PER_STEP] or [
        name for _, name in errors[:FRAGILE_AT_LEAST]]
    kept.extend(fragile)
    return _int8_denylisting(debugger, fragile)


def int8_float_after(converter: tf.lite.TFLiteConverter, pattern: str, narrow_except: str | None = None) -> bytes:
    """int8 with float in/out in which the ops writing tensors whose names match `pattern` (a regex), and every op
    that reads what they write, stay float, and so do the ops around a tensor that calibration only saw as 0; the
    rest is full-integer. `converter` has optimisations and a representative data set set. With `narrow_except` (a
    regex), every activation range but those of the tensors it names is narrowed to a percentile of its calibration
    values (models/export/percentile_ranges.py).

    Why: a detector's decoding (peak picking, top-k, box arithmetic) ends in rows that mix box fractions, scores
    and class indices; quantised, they share one 8-bit scale, so the boxes of an 80-class model move by a third
    of a cell. Calibration runs once: the float part is chosen by name in the calibrated model.
    """
    import re
    import warnings

    from tensorflow.lite.tools import flatbuffer_utils

    from dlpipe.quiet import captured_output

    with captured_output(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # float in/out: asked for
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")  # the debugger's own use
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                             debug_dataset=converter.representative_dataset)
    if narrow_except is not None:
        from dlpipe.models.export.percentile_ranges import narrowed_ranges

        dataset = getattr(converter.representative_dataset, "input_gen", converter.representative_dataset)
        with captured_output():  # LiteRT's delegate lines
            debugger.calibrated_model = narrowed_ranges(debugger.calibrated_model, dataset, narrow_except)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(debugger.calibrated_model))
    graph, kinds = model.subgraphs[0], _op_names(model)
    names = [tensor.name.decode() for tensor in graph.tensors]
    chosen = {index for index, name in enumerate(names) if re.search(pattern, name)}
    if not chosen:
        raise ValueError(f"no tensor of the model matches {pattern!r}: nothing would stay float")
    dead = {index for index, tensor in enumerate(graph.tensors) if _calibrated_range(tensor) == 0.0}
    float_ops, int8_ops = set(), set()
    for operator in graph.operators:  # in execution order: readers after writers
        if chosen.intersection(operator.outputs) or chosen.intersection(operator.inputs):
            chosen.update(operator.outputs)
            float_ops.add(kinds[operator.opcodeIndex])
        else:
            int8_ops.add(kinds[operator.opcodeIndex])
    # a tensor that was 0 on every calibration input (a ReLU that fine-tuning left dead) gets a scale of ~1e-38 / 255:
    # XNNPACK refuses to prepare the file. Its writer and its readers stay float: a handful of small ops
    dead_ends = {out for operator in graph.operators if dead.intersection([*operator.inputs, *operator.outputs])
                 for out in operator.outputs}
    chosen |= dead_ends
    # the quantiser does not match a two-output op (TOPK_V2) by its tensors' names: an op kind that only the
    # float part uses is denylisted as a kind, which touches nothing else
    return _int8_denylisting(debugger, sorted(names[index] for index in chosen), sorted(float_ops - int8_ops))


def _calibrated_range(tensor: Any) -> float | None:
    """The largest |value| calibration saw in a tensor of a calibrated (not yet quantised) model; None if unrecorded.
    Below float32's smallest normal number counts as 0 (the calibrator's floor for a tensor that was always 0)."""
    from dlpipe.models.export.percentile_ranges import recorded_range

    recorded = recorded_range(tensor)
    if recorded is None:
        return None
    largest = max(abs(recorded[0]), abs(recorded[1]))
    return 0.0 if largest < np.finfo(np.float32).tiny * 2 else largest


def _op_names(model: Any) -> list[str]:
    """A flatbuffer model's operator codes as builtin names ("CONV_2D", "TOPK_V2"), by opcode index."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return [names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes]


def _int8_denylisting(debugger: Any, nodes: list[str], kinds: list[str] | None = None) -> bytes:
    """The debugger's calibrated model quantised with the ops writing `nodes` (tensor names), and every op of the
    given `kinds`, left float."""
    import warnings

    from dlpipe.quiet import captured_output

    with captured_output(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes,
                                                                         denylisted_ops=kinds or None)
        return debugger.get_nondebug_quantized_model()
