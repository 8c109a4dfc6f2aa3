"""One cross-validation fold of detection_fashion: the COCO start (or the ImageNet EfficientNet-Lite0 detector)
trained with the detect task's loss, scored by COCO mAP on the fold's held-out scenes.

Why: a quick, same-recipe look at what the COCO-pretrained start (models/centernet_start.py) is worth before the
detect pipeline's full 5-fold comparison. Recipe: 320 px, horizontal flips (each epoch 15 batches of 16 drawn
from the 240 training scenes and their mirrors), Adam with cosine decay, every layer trainable, the task's
CenterNetLoss (models/centernet_loss.py) and decoding (models/detector.py). Folds as the brief fixes them:
perm = default_rng(0).permutation(300), fold k validates on sorted(perm[k::5]).

    nice python bench/centernet_start_fold0.py coco 15 2e-4      # or: lite0 15 1e-3; coco 45 2e-4
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

DATA = "/work/shared/data/detection_fashion"
SIZE, CLASSES, BATCH = 320, 4, 16


def scenes() -> tuple[list[dict], dict[int, list[dict]], list[dict]]:
    annotations = json.loads(open(f"{DATA}/annotations.json", encoding="utf-8").read())
    boxes: dict[int, list[dict]] = {}
    for box in annotations["annotations"]:
        boxes.setdefault(box["image_id"], []).append(box)
    return annotations["images"], boxes, annotations["categories"]


def load(image: dict, boxes: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    pixels = Image.open(f"{DATA}/images/{image['file_name']}").convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    w, h = image["width"], image["height"]
    corners = [[b["bbox"][0] / w, b["bbox"][1] / h, (b["bbox"][0] + b["bbox"][2]) / w, (b["bbox"][1] + b["bbox"][3]) / h]
               for b in boxes]
    return (np.asarray(pixels, np.float32), np.array(corners, np.float32).reshape(-1, 4),
            np.array([b["category_id"] - 1 for b in boxes], np.int32))


def training_arrays(photos: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """The photos and their mirror images with the detect task's targets."""
    import tensorflow as tf

    from dlpipe.models.centernet_loss import encode_targets

    def targets(corners: np.ndarray, classes: np.ndarray) -> np.ndarray:
        return encode_targets(tf.constant(corners), tf.constant(classes), SIZE // 4, CLASSES).numpy()

    def mirrored(c: np.ndarray) -> np.ndarray:
        return np.stack([1 - c[:, 2], c[:, 1], 1 - c[:, 0], c[:, 3]], axis=1)

    x = np.stack([p[0] for p in photos] + [p[0][:, ::-1] for p in photos])
    y = np.stack([targets(c, k) for _, c, k in photos] + [targets(mirrored(c), k) for _, c, k in photos])
    return x, y


def build(start: str):
    if start == "coco":
        from dlpipe.models.centernet_start import build_coco_start

        return build_coco_start(CLASSES, SIZE)[0]
    from dlpipe.models.backbones import resolve_weights
    from dlpipe.models.detector import build_detector
    from dlpipe.models.segmentation import ENCODERS

    weights = resolve_weights(ENCODERS.get("efficientnet_lite0", key="model.encoder"), "imagenet")
    model = build_detector("efficientnet_lite0", CLASSES, SIZE, weights)[0]
    model.get_layer("backbone").trainable = True
    return model


def coco_map(rows: np.ndarray, images: list[dict], boxes: dict, categories: list[dict]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO()
    truth.dataset = {"images": images, "annotations": [b for i in images for b in boxes.get(i["id"], [])],
                     "categories": categories}
    truth.createIndex()
    found = [{"image_id": image["id"], "category_id": int(c) + 1, "score": float(s),
              "bbox": [float(x1 * image["width"]), float(y1 * image["height"]),
                       float((x2 - x1) * image["width"]), float((y2 - y1) * image["height"])]}
             for image, row in zip(images, rows) for x1, y1, x2, y2, s, c in row if s >= 0.01]
    evaluation = COCOeval(truth, truth.loadRes(found), "bbox")
    evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def main(start: str, epochs: int, learning_rate: float) -> None:
    import keras

    from dlpipe.models.centernet_loss import CenterNetLoss
    from dlpipe.models.detector import detection_model

    images, boxes, categories = scenes()
    held_out = sorted(np.random.default_rng(0).permutation(len(images))[0::5])
    training = [i for i in range(len(images)) if i not in set(held_out)]
    x, y = training_arrays([load(images[i], boxes.get(images[i]["id"], [])) for i in training])
    model = build(start)
    steps = len(training) // BATCH
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=CenterNetLoss(CLASSES))
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.time()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, steps_per_epoch=steps, shuffle=True, verbose=2)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_minutes = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 60
    photos = np.stack([load(images[i], [])[0] for i in held_out])
    rows = detection_model(model, CLASSES).predict(photos, batch_size=BATCH, verbose=0)
    mean_ap, ap50 = coco_map(rows, [images[i] for i in held_out], boxes, categories)
    print(f"RESULT start={start} epochs={epochs} lr={learning_rate} mAP={mean_ap:.3f} AP50={ap50:.3f} "
          f"train_cpu_min={cpu_minutes:.1f} wall_s={time.time() - began:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
