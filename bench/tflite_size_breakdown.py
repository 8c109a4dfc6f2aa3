"""Benchmark: where the bytes of the float32 and int8 TFLite files go, and which converter settings shrink int8.

One command, from the repository root with the venv active:

    python bench/tflite_size_breakdown.py [--model PATH.keras] [--variants]

Without --model it builds what the pipeline builds by default (EfficientNet-Lite0, ImageNet weights,
untrained 2-class head, whose zero bias the converter drops: 8 bytes less). Both files come from the project's own
TFLite exporter (`dlpipe.models.export.export`), int8 calibrated on `representative_images` of the hymenoptera
training photos.
Each flatbuffer is parsed and its bytes are counted by category: weight and bias tensors by dtype, other
constants, quantisation parameters (float32 scales, int64 zero points), metadata, and the rest (graph
structure, tensor names, flatbuffer tables and padding). Then the floor: the bytes no int8 file of this
network can avoid.

--variants converts again with each converter setting worth trying, the 2-class model for size and the
1000-class ImageNet EfficientNet-Lite0 (`efficientnet-lite0-imagenet`) converted the same ways for
accuracy: top-1 agreement with its float32 TFLite and top-1 accuracy on the photo's ImageNet class
(ant 310, bee 309), on all 245 hymenoptera training photos.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "train"
IMAGENET_CLASS = {"ants": 310, "bees": 309}
KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}  # input 1: weights, input 2: bias

# (name, quantize, converter attributes set just before convert())
VARIANTS = [
    ("(a) int8, per-channel (project default)", "int8", {}),
    ("(b) int8, per-tensor", "int8", {"_experimental_disable_per_channel": True}),
    ("(c) int8, dense layer per-tensor", "int8",
     {"_experimental_disable_per_channel_quantization_for_dense_layers": True}),
    ("(d) int8, no mul+FC fusion", "int8", {"_experimental_disable_fuse_mul_and_fc": True}),
    ("(e) int8, reduce type precision", "int8", {"_experimental_reduce_type_precision": True}),
    ("(f) int8, sparsity optimisation", "int8", {"optimizations": "sparsity"}),
    ("(g) int8, legacy quantizer", "int8", {"experimental_new_quantizer": False}),
    ("(h) int8, no conversion metadata", "int8", {"exclude_conversion_metadata": True}),
    ("(i) int8, per-tensor + no conversion metadata", "int8",
     {"_experimental_disable_per_channel": True, "exclude_conversion_metadata": True}),
    ("(j) dynamic range (int8 weights only)", "dynamic", {}),
]


@contextlib.contextmanager
def quiet():
    """Silence the converter's stdout/stderr chatter (C++ included); show it if conversion fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile("w+") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            log.seek(0)
            sys.__stderr__.write(log.read()[-4000:])
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def converter_settings(settings: dict):
    """Make the project's `export_image_tflite` set `settings` on its converter right before convert()."""
    import tensorflow as tf

    original = tf.lite.TFLiteConverter.from_keras_model

    def from_keras_model(model):
        converter = original(model)
        convert = converter.convert

        def convert_with_settings():
            for name, value in settings.items():
                if name == "optimizations" and value == "sparsity":
                    value = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
                setattr(converter, name, value)
            return convert()

        converter.convert = convert_with_settings
        return converter

    tf.lite.TFLiteConverter.from_keras_model = from_keras_model
    try:
        yield
    finally:
        tf.lite.TFLiteConverter.from_keras_model = original


FORMAT_OF = {"none": "tflite", "float16": "tflite-float16", "dynamic": "tflite-dynamic", "int8": "tflite-int8"}


def export(model, out_dir: Path, class_names, prep, quantize: str, calibration, settings: dict | None = None) -> Path:
    """The project's own TFLite export of `model` into `out_dir`; int8 calibrates on `representative_images`
    of the `calibration` photo paths, as the export stage does. No parity check (nothing to compare here)."""
    from dlpipe.models.artifacts import Bundle
    from dlpipe.models.export import ExportRequest
    from dlpipe.models.export import export as export_artifact

    request = ExportRequest(Bundle("image", list(class_names), prep), calibration=list(calibration or ()))
    with quiet(), converter_settings(settings or {}):
        return export_artifact(model, FORMAT_OF[quantize], out_dir, request)


def _length(values) -> int:
    return 0 if values is None else len(values)


def _tensor_roles(model, op_name: dict) -> dict[tuple[int, int], str]:
    """(subgraph, tensor) -> "weights" / "biases" for the inputs 1 and 2 of conv and fully-connected ops."""
    roles = {}
    for number, graph in enumerate(model.subgraphs):
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if op_name[max(code.builtinCode, code.deprecatedBuiltinCode)] in KERNEL_OPS:
                for slot, role in ((1, "weights"), (2, "biases")):
                    if len(op.inputs) > slot and op.inputs[slot] >= 0:
                        roles[number, op.inputs[slot]] = role
    return roles


def breakdown(path: Path) -> tuple[Counter, Counter]:
    """Bytes per category, and counts (scales, per-channel tensors and channels) of one .tflite file."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    type_name = {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    op_name = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    roles = _tensor_roles(model, op_name)
    sizes, counts = Counter(), Counter()
    for number, graph in enumerate(model.subgraphs):
        for index, tensor in enumerate(graph.tensors):
            data = model.buffers[tensor.buffer].data
            role = roles.get((number, index), "activations" if data is None else "other constants")
            if data is not None:
                sizes[f"{role} {type_name[tensor.type]}" if role in ("weights", "biases") else role] += len(data)
            quant = tensor.quantization
            if quant is None:
                continue
            sizes["quantisation scales (float32)"] += 4 * _length(quant.scale)
            sizes["quantisation zero points (int64)"] += 8 * _length(quant.zeroPoint)
            sizes["quantisation min/max (float32)"] += 4 * (_length(quant.min) + _length(quant.max))
            counts["scales"] += _length(quant.scale)
            if _length(quant.scale) > 1:
                counts[f"per-channel {role}"] += 1
                counts[f"per-channel {role} channels"] += len(quant.scale)
    sizes["metadata"] = sum(_length(model.buffers[entry.buffer].data) for entry in model.metadata or [])
    sizes["rest (graph structure, names, flatbuffer overhead)"] = path.stat().st_size - sum(sizes.values())
    return sizes, counts


def print_breakdown(f32: Path, i8: Path) -> None:
    (s32, _), (s8, c8) = breakdown(f32), breakdown(i8)
    total32, total8 = f32.stat().st_size, i8.stat().st_size
    order = ["weights float32", "weights float16", "weights int8", "biases float32", "biases int32", "other constants",
             "quantisation scales (float32)", "quantisation zero points (int64)", "quantisation min/max (float32)",
             "metadata", "rest (graph structure, names, flatbuffer overhead)"]
    print("| bytes | float32 TFLite | int8 TFLite | int8 / float32 file |")
    print("| --- | ---: | ---: | ---: |")
    for key in order + sorted((set(s32) | set(s8)) - set(order)):
        if s32[key] or s8[key]:
            print(f"| {key} | {s32[key]:,} | {s8[key]:,} | {s8[key] / total32:.4f} |")
    print(f"| **file** | **{total32:,}** | **{total8:,}** | **{total8 / total32:.4f}** |")
    print(f"\nint8 quantisation parameters: {c8['scales']:,} scales and as many zero points; per-channel: "
          f"{c8['per-channel weights']} weight tensors ({c8['per-channel weights channels']:,} channels), "
          f"{c8['per-channel biases']} bias tensors ({c8['per-channel biases channels']:,} channels); "
          "every other quantised tensor per-tensor (one scale, one zero point).")
    weights8, biases = s32["weights float32"] // 4, s32["biases float32"]
    carried = total32 - s32["weights float32"] - s32["biases float32"]  # constants, metadata, graph: as in float32
    channels = c8["per-channel weights channels"]
    print("\nFloor (int8 weights are float32 weights / 4 exactly; biases stay 4-byte int32):")
    print(f"- int8 weights + int32 biases alone: {weights8:,} + {biases:,} = {weights8 + biases:,} bytes, "
          f"**{(weights8 + biases) / total32:.4f}** of the float32 file")
    per_channel = weights8 + biases + 12 * channels + carried
    print(f"- plus one float32 scale + int64 zero point per weight channel ({channels:,}; the format needs both) and "
          f"the float32 file's graph, constants and metadata ({carried:,}): {per_channel:,} bytes, "
          f"**{per_channel / total32:.4f}**")
    tensors = c8["per-channel weights"]
    per_tensor = weights8 + biases + 12 * tensors + carried
    print(f"- the same with one scale + zero point per weight tensor ({tensors}; per-tensor quantisation): "
          f"{per_tensor:,} bytes, **{per_tensor / total32:.4f}**")


def evaluation_photos(prep):
    """All hymenoptera training photos, preprocessed by the project, with their ImageNet class."""
    import numpy as np

    from dlpipe.data.images import scan_image_folder
    from dlpipe.data.preprocess import load_image

    folder = scan_image_folder(PHOTOS, verify=False)
    pixels = np.stack([load_image(path, prep).numpy() for path in folder.paths])
    targets = np.array([IMAGENET_CLASS[folder.class_names[label]] for label in folder.labels])
    return folder.paths, pixels, targets


def run_variants(model, class_names, prep, out: Path) -> None:
    from dlpipe.models.pretrained import NAMED_MODELS
    from dlpipe.models.runtimes import load_runtime

    imagenet = NAMED_MODELS.get("efficientnet-lite0-imagenet")()
    paths, pixels, targets = evaluation_photos(imagenet.preprocessing)
    calibration = small_calibration = paths  # the exporter preprocesses its sample for each model

    def predict(path: Path):
        return load_runtime(path, num_threads=2).predict(pixels).argmax(1)

    base = export(model, out / "v_f32", class_names, prep, "none", None)
    base_imagenet = export(imagenet.model, out / "v_in_f32", imagenet.class_names,
                           imagenet.preprocessing, "none", None)
    reference = predict(base_imagenet)
    print(f"\n{len(paths)} photos · float32 TFLite: 2-class {base.stat().st_size:,} bytes, 1000-class "
          f"{base_imagenet.stat().st_size:,} bytes, ImageNet top-1 accuracy {(reference == targets).mean():.3f}\n")
    print("| variant | converter setting | 2-class bytes | vs float32 | 1000-class bytes | vs float32 "
          "| top-1 agreement with float32 | ImageNet top-1 accuracy | convert + evaluate (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for index, (name, quantize, settings) in enumerate(VARIANTS):
        started = time.perf_counter()
        small = export(model, out / f"v{index}", class_names, prep, quantize,
                       small_calibration, settings)
        large = export(imagenet.model, out / f"v{index}_in", imagenet.class_names,
                       imagenet.preprocessing, quantize, calibration, settings)
        top1 = predict(large)
        agree = int((top1 == reference).sum())
        setting = ", ".join(f"`{key} = {value}`" for key, value in settings.items()) or f"quantize={quantize}"
        print(f"| {name} | {setting} | {small.stat().st_size:,} | {small.stat().st_size / base.stat().st_size:.4f} "
              f"| {large.stat().st_size:,} | {large.stat().st_size / base_imagenet.stat().st_size:.4f} "
              f"| {agree / len(paths):.3f} ({agree}/{len(paths)}) | {(top1 == targets).mean():.3f} "
              f"| {time.perf_counter() - started:.0f} |", flush=True)


def load_model(path: str | None):
    """(model, class names, preprocessing): a saved .keras run model, or the pipeline's default build."""
    if path:
        from dlpipe.models.runtimes import load_runtime

        runtime = load_runtime(Path(path))
        return runtime.model, runtime.class_names, runtime.preprocessing
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import build_classifier

    spec = get_backbone("efficientnet_lite0")
    model = build_classifier(spec, num_classes=2, image_size=spec.input_size, weights="imagenet")
    return model, ["ants", "bees"], ImagePreprocessing(image_size=spec.input_size, resize=spec.resize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a .keras file with labels.txt and preprocessing.json beside it")
    parser.add_argument("--variants", action="store_true", help="also try converter settings (several minutes)")
    args = parser.parse_args()
    from dlpipe.data.images import scan_image_folder

    started = time.perf_counter()
    model, class_names, prep = load_model(args.model)
    photos = scan_image_folder(PHOTOS, verify=False).paths
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        f32 = export(model, out / "f32", class_names, prep, "none", None)
        i8 = export(model, out / "i8", class_names, prep, "int8", photos)
        print(f"\n{date.today()} · `python bench/tflite_size_breakdown.py{' --variants' if args.variants else ''}` · "
              f"{args.model or 'EfficientNet-Lite0, ImageNet weights, 2-class head'} · int8 calibrated on "
              f"{min(100, len(photos))} training photos (representative_images: 100 by default)\n")
        print_breakdown(f32, i8)
        if args.variants:
            run_variants(model, class_names, prep, out)
    print(f"\n{time.perf_counter() - started:.0f} s in all, {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()
