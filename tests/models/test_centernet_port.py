"""The Keras port of coco-detector's CenterNet-MobileNetV3: faithful to the graph, trainable, saved, converted.

Needs the COCO detector's TF.js files (scripts/fetch_coco_detector.sh, run by scripts/setup.sh): skipped
locally without them, a failure under CI. The photo is darknet's dog.jpg when the Debian package is there,
else a hymenoptera photo.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assets import require
from conftest import HYMENOPTERA

DARKNET_DOG = Path("/usr/share/darknet/data/dog.jpg")


@pytest.fixture(scope="module")
def port():
    from dlpipe.models import centernet_port

    reason = centernet_port.missing_reason()
    require(not reason, "COCO detector's TF.js graph (coco-detector)", reason or "")
    return centernet_port


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from PIL import Image

    path = DARKNET_DOG if DARKNET_DOG.is_file() else next(iter(sorted(HYMENOPTERA.glob("*/*.jpg"))), None)
    require(path is not None, f"{DARKNET_DOG} or a photo in {HYMENOPTERA}", "scripts/setup.sh installs darknet")
    image = Image.open(path).convert("RGB").resize((512, 512), Image.BILINEAR)
    return np.asarray(image, np.float32)[None]


@pytest.fixture(scope="module")
def coco_port(port):
    """The port with COCO's own heads at the graph's 512 px."""
    return port.centernet_model(512)


@contextlib.contextmanager
def grappler_without(option: str):
    """Run TF graphs without one Grappler rewrite (restored after), to compare op for op."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get(option, True)
    tf.config.optimizer.set_experimental_options({option: False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({option: before})


def graph_function(port, feeds: list[str], fetches: list[str]):
    import tensorflow as tf

    from dlpipe.models.tfjs_graph import graph_def, read_model_json

    graph = graph_def(read_model_json(port.tfjs_dir()))
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph, name=""), [])
    return wrapped.prune(feeds=[f"{name}:0" for name in feeds],
                         fetches=[wrapped.graph.get_tensor_by_name(f"{name}:0") for name in fetches])


def test_the_port_computes_the_graphs_features_and_with_its_decode_coco_detectors_detections(port, coco_port, photo):
    import keras
    import tensorflow as tf

    from dlpipe.models.coco_detector import GraphDetector, load_graph

    features = coco_port.get_layer("CenternetHead.mul").output  # the last shared map, named after its node
    assert tuple(features.shape[1:]) == (512 // port.FEATURE_STRIDE, 512 // port.FEATURE_STRIDE,
                                         port.FEATURE_CHANNELS)
    outputs = coco_port(photo)
    # oneDNN's fused kernels (Grappler's remapper) move the graph's own features by up to ~0.02 of a range
    # of ~3.5; op for op the port computes what the graph computes, but for its hard-swish's exact 1/6 (the graph
    # stores float16's 0.16662598; models/centernet_layers.py HardSwish): 0.023 at most on this photo
    with grappler_without("remapping"):
        (graph_features,) = graph_function(port, [port.INPUT_NODE], [port.feature_node()])(tf.constant(photo))
    port_features = keras.Model(coco_port.input, features)(photo)
    assert np.abs(port_features.numpy() - graph_features.numpy()).max() < 0.03

    shipped = GraphDetector(load_graph())(tf.constant(photo)).numpy()[0]
    (decoded,) = graph_function(port, [port.HEATMAP_NODE, port.BOXES_NODE], [port.DETECTIONS_NODE])(
        outputs["heatmap"], outputs["boxes"])
    ours = port.decode_detections(outputs["heatmap"], outputs["boxes"]).numpy()[0]
    np.testing.assert_allclose(ours, decoded.numpy()[0], atol=1e-3)
    for box in shipped[:5]:  # coco-detector's five best: each one is among the port's, same class, score and box
        same = (ours[:, 5] == box[5]) & (np.abs(ours[:, 4] - box[4]) < 0.01)
        assert same.any() and np.abs(ours[same, :4] - box[:4]).max(axis=1).min() < 1.0, box


def test_the_coco_start_in_the_detect_tasks_layout_holds_cocos_heat_map_and_boxes(port, coco_port, photo):
    from dlpipe.models.centernet_start import build_coco_start

    model, _ = build_coco_start(80, 512, coco_classes=True)
    head = model(photo).numpy()
    expected = coco_port(photo)
    np.testing.assert_allclose(1 / (1 + np.exp(-head[..., :80])), expected["heatmap"].numpy(), atol=1e-5)
    # log-distances from each cell's centre, in cells -> the graph's pixel distances from the cell's corner
    sides = np.exp(np.clip(head[..., 80:], -6.0, 6.0)) * port.FEATURE_STRIDE + np.array([-2.0, -2.0, 2.0, 2.0])
    graph_sides = expected["boxes"].numpy()
    positive = np.all(graph_sides + np.array([2.0, 2.0, -2.0, -2.0]) > 0.1, axis=-1)  # not clipped by the log
    assert positive.mean() > 0.9
    np.testing.assert_allclose(sides[positive], graph_sides[positive], atol=1e-2)


@pytest.mark.long  # a training step and a conversion of the real COCO start: ~18 s
def test_at_320_a_new_class_head_trains_the_encoder_saves_as_keras_and_converts_to_builtin_tflite(port, photo,
                                                                                                  tmp_path):
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from dlpipe.models.centernet_start import build_coco_start
    from dlpipe.models.finetune import unfreeze_top_blocks

    model, pattern = build_coco_start(3, 320)
    assert model.output.shape[1:] == (80, 80, 3 + 4)
    encoder = model.get_layer(port.ENCODER_LAYER_NAME)
    unfreeze_top_blocks(encoder, pattern, 1)
    assert {v.path.split("/")[0] for v in encoder.trainable_weights} == {"extern1.BatchNorm.FusedBatchNorm"}
    unfreeze_top_blocks(encoder, pattern, -1)
    image = tf.image.resize(photo, (320, 320))
    first_conv, box_head = encoder.get_layer("MobilenetV3.Conv.BatchNorm.FusedBatchNorm"), model.get_layer("box_distances")
    before = [first_conv.kernel.numpy().copy(), box_head.kernel.numpy().copy()]
    with tf.GradientTape() as tape:
        out = model(image, training=True)
        loss = tf.reduce_mean(tf.sigmoid(out[..., :3])) + tf.reduce_mean(tf.abs(out[..., 3:])) * 1e-3
    grads = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(0.01).apply_gradients(zip(grads, model.trainable_variables))
    assert all(g is not None for g in grads)
    assert not np.allclose(first_conv.kernel.numpy(), before[0]) and not np.allclose(box_head.kernel.numpy(), before[1])

    path = tmp_path / "centernet.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    expected = model(image)
    np.testing.assert_allclose(reloaded(image).numpy(), expected.numpy(), atol=1e-5)
    fresh = subprocess.run([sys.executable, "-c", "import sys; from dlpipe.models.artifacts import load_keras; "
                            "print(load_keras(sys.argv[1]).name)", str(path)], capture_output=True, text=True)
    assert fresh.stdout.strip() == model.name, fresh.stderr[-2000:]  # dlpipe's loader registers the port's layers

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image.numpy())
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(lite, expected.numpy(), atol=5e-3)  # logits and sizes in cells, up to ~10-80


@pytest.mark.long  # an int8 conversion of the real COCO start at 320 px: ~40 s
def test_int8_of_the_coco_start_keeps_its_confident_boxes_and_runs_in_xnnpack(port, photo):
    """Each of the graph's hard-swishes is one HARD_SWISH op (as four int8-rounded ops the quantised heat map lost
    COCO's peaks), so the detect task's int8 conversion (network int8, decoding float) of the COCO start finds the
    float model's confident boxes on the photo, in LiteRT's default resolver (XNNPACK aborted on the former form)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from dlpipe.models.centernet_start import build_coco_start
    from dlpipe.models.detector import detection_model
    from dlpipe.models.export.converters import _calibration, int8_float_after
    from dlpipe.models.tasks.detect.export import INT8_FLOAT_TENSORS, convert_detector
    from dlpipe.models.tasks.detect.task import box_iou

    start, _ = build_coco_start(port.COCO_CLASSES, 320, coco_classes=True)
    model = detection_model(start, port.COCO_CLASSES)
    image = tf.image.resize(photo, (320, 320)).numpy()
    others = [np.asarray(Image.open(path).convert("RGB").resize((320, 320)), np.float32)[None]
              for path in sorted(HYMENOPTERA.glob("*/*.jpg"))[:16]]

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration([image, *others])

    interpreter = Interpreter(model_content=convert_detector(
        model, configure, lambda converter: int8_float_after(converter, INT8_FLOAT_TENSORS)))
    ops = [op["op_name"] for op in interpreter._get_ops_details()]  # noqa: SLF001
    assert ops.count("HARD_SWISH") == 20, sorted(set(ops))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    found = {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}
    expected = model(image).numpy()[0]
    confident = expected[expected[:, 4] > 0.3]
    assert len(confident) >= 2, expected[:5]  # dog.jpg: the bicycle and the car above 0.3
    boxes = found["locations"][:, [1, 0, 3, 2]]  # (ymin, xmin, ymax, xmax) -> (x1, y1, x2, y2)
    for box in confident:
        same = boxes[(found["classes"] == box[5]) & (found["scores"] > 0.2)]
        assert len(same) and box_iou(same, box[None, :4]).max() > 0.6, (box, same[:3])  # the bicycle: 0.69 (2026-12-06)


def test_a_size_the_graph_cannot_take_is_refused_naming_it(port):
    with pytest.raises(ValueError, match="multiple of 32.*image_size=300"):
        port.centernet_features(300)
    with pytest.raises(ValueError, match="num_classes=0"):
        import keras

        port.centernet_heads(keras.Input((8, 8, port.FEATURE_CHANNELS)), num_classes=0)


def test_an_op_the_port_does_not_map_is_named_in_the_error():
    from tensorflow.core.framework import node_def_pb2

    from dlpipe.models.tfjs_keras_ops import port_node

    node = node_def_pb2.NodeDef(name="tower_0/head/Softmax", op="Softmax", input=["x"])
    with pytest.raises(NotImplementedError, match="tower_0/head/Softmax \\(Softmax\\)"):
        port_node(node, ["x"], {"x": None}, {}, 1.0, "head.Softmax")
