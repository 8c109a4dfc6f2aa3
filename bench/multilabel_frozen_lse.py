"""Proxy (issue 25): a spatial log-sum-exp head on FROZEN EfficientNet-Lite0 stride-16 features, 5-fold, fashion scenes.

One command, from the repository root with the venv active (about 15 min on a busy 2-core machine):

    nice -n 5 python bench/multilabel_frozen_lse.py [--data ../shared/data/detection_fashion] [--sharpness 5]

Every scene is read as `dlpipe run image-multilabel` reads it (448 px, whole scene stretched, MediaPipe's sampling)
and passed once through the frozen ImageNet Lite0 up to `block11_expand_activation` (the last 28x28 map at 448 px,
672 channels; cached in bench/results/multilabel_frozen_lse_maps.npy). Per fold of the bench's own split
(`load.folds=5`, seed 42) a head (batch norm, dropout 0.2, 1x1 conv per label, log-sum-exp pooling of sharpness r,
sigmoid) trains 40 epochs (fixed in advance; Adam 1e-3, batch 16, no augmentation) on the fold's 240 training
scenes and scores its 60 others. It prints each fold's mAP, and the pooled out-of-fold mAP and micro/macro F1 at
thresholds chosen on the other folds, as bench/multilabel_fashion.py reports them. A measurement of the head, not
of the pipeline (no augmentation, no fine-tuning): BENCHMARKS.md says how the two compare.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MAP_LAYER = "block11_expand_activation"


def feature_maps(paths: list[str], cache: Path):
    """The frozen backbone's stride-16 maps of every scene (float16), computed once."""
    import keras
    import numpy as np

    from dlpipe.data.datasets import batched, decoded_images
    from dlpipe.data.preprocess_spec import ImagePreprocessing
    from dlpipe.models.efficientnet_lite import efficientnet_lite
    from dlpipe.models.layers import ImagePreprocess

    if cache.is_file():
        return np.load(cache)
    net = efficientnet_lite("efficientnet_lite0", include_top=False, weights="imagenet", input_shape=(448, 448, 3))
    inputs = keras.Input((448, 448, 3))
    truncated = keras.Model(net.inputs, net.get_layer(MAP_LAYER).output)
    model = keras.Model(inputs, truncated(ImagePreprocess("efficientnet_lite")(inputs)))
    prep = ImagePreprocessing(image_size=448, resize="stretch", sampling="mediapipe")
    batches = batched(decoded_images(paths, None, prep, cache=False), 10)
    maps = np.concatenate([model.predict_on_batch(batch) for batch in batches]).astype(np.float16)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, maps)
    return maps


def fold_scores(maps, targets, train, held_out, sharpness: float):
    """Train the lse head on one fold's training scenes; its scores on the held-out ones."""
    import keras
    import numpy as np

    from dlpipe.models.layers import LogSumExpPooling

    keras.utils.set_random_seed(0)
    inputs = keras.Input(maps.shape[1:])
    x = keras.layers.BatchNormalization()(inputs)
    x = keras.layers.Conv2D(targets.shape[1], 1)(keras.layers.Dropout(0.2)(x))
    head = keras.Model(inputs, keras.layers.Activation("sigmoid")(LogSumExpPooling(sharpness)(x)))
    head.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    head.fit(maps[train].astype(np.float32), targets[train].astype(np.float32), batch_size=16, epochs=40, verbose=0)
    return head.predict(maps[held_out].astype(np.float32), verbose=0)


def main() -> None:
    import numpy as np

    from dlpipe.data.multilabel import multi_hot, read_multilabel
    from dlpipe.models.multilabel_metrics import crossfit_thresholds, mean_average_precision, multilabel_report
    from dlpipe.pipelines.image_multilabel.load import MultiLabelLoadConfig, _split

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "detection_fashion"))
    parser.add_argument("--sharpness", type=float, default=5.0)
    args = parser.parse_args()
    data = read_multilabel(args.data, verify=False)
    hot = multi_hot(data.labels, data.class_names)
    maps = feature_maps(data.paths, RESULTS / "multilabel_frozen_lse_maps.npy")
    scores, truth, fold_of, fold_maps = [], [], [], []
    for fold in range(5):
        train, held_out = _split(hot.tolist(), MultiLabelLoadConfig(path=args.data, folds=5, fold=fold), 42)
        scores.append(fold_scores(maps, hot, train, held_out, args.sharpness))
        truth.append(hot[held_out])
        fold_of.append(np.full(len(held_out), fold))
        fold_maps.append(mean_average_precision(truth[-1], scores[-1]))
        print(f"fold {fold}: mAP {fold_maps[-1]:.3f} on {len(held_out)} scenes", flush=True)
    s, t, f = np.concatenate(scores), np.concatenate(truth), np.concatenate(fold_of)
    pooled = multilabel_report(t, s, crossfit_thresholds(t, s, f), data.class_names, seed=0)
    print(f"mAP mean ± sd over folds {np.mean(fold_maps):.3f} ± {np.std(fold_maps, ddof=1):.3f}; pooled mAP "
          f"{pooled['map']:.3f} {pooled['map_interval']}, micro F1 {pooled['micro_f1']:.3f} {pooled['micro_f1_interval']},"
          f" macro F1 {pooled['macro_f1']:.3f}")
    for name, label in pooled["per_label"].items():
        print(f"  {name}: AP {label['ap']:.3f} F1 {label['f1']:.3f}")
    (RESULTS / "multilabel_frozen_lse.json").write_text(json.dumps(
        {"sharpness": args.sharpness, "fold_map": fold_maps, "pooled": pooled}, indent=1, default=float))


if __name__ == "__main__":
    main()
