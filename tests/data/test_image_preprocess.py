"""Decoding, resizing, colour conversion, OpenCV filters and augmentation on real tensors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import HYMENOPTERA
from dlpipe.data.augment import build_augmenter, flip_pair
from dlpipe.data.datasets import batched, decoded_images
from dlpipe.data.preprocess import ImagePreprocessing, apply_filter, convert_color, decode_image, resize_image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("L", (20, 10), 128), "PNG"),
        (Image.new("RGBA", (20, 10), (10, 20, 30, 0)), "PNG"),
        (Image.new("RGB", (20, 10), (200, 10, 10)).convert("P"), "PNG"),
        (Image.new("RGB", (20, 10), (200, 10, 10)), "BMP"),
        (Image.new("RGB", (20, 10), (200, 10, 10)), "GIF"),
        (Image.new("L", (20, 10), 77), "JPEG"),
    ],
)
def test_every_format_and_mode_decodes_to_rgb(image, fmt):
    decoded = decode_image(tf.constant(encode(image, fmt))).numpy()
    assert decoded.shape == (10, 20, 3) and decoded.dtype == np.uint8
    reference = np.asarray(image.convert("RGB"))
    assert np.abs(decoded.astype(int) - reference.astype(int)).max() <= 3


def test_resize_modes():
    wide = tf.ones((50, 100, 3), tf.uint8) * 200
    assert resize_image(wide, 32, "stretch").shape == (32, 32, 3)
    padded = resize_image(wide, 32, "pad").numpy()
    assert padded[0].max() == 0 and padded[16].min() > 190  # letterbox bars keep the aspect ratio
    stripes = np.zeros((50, 100, 3), np.uint8)
    stripes[:, :16] = 255  # a white band at the left edge is cut off by the centre crop
    cropped = resize_image(tf.constant(stripes), 32, "crop", crop_fraction=1.0).numpy()
    assert cropped.shape == (32, 32, 3) and cropped.max() < 1


def test_jpegs_decode_like_pillow():
    """The accurate DCT: the pixels Pillow, OpenCV and MediaPipe decode, not TF's fast approximation."""
    photo = sorted((HYMENOPTERA / "ants").glob("*.jpg"))[3]
    ours = decode_image(tf.constant(photo.read_bytes())).numpy().astype(int)
    assert np.abs(ours - np.asarray(Image.open(photo).convert("RGB")).astype(int)).max() <= 1


def test_mediapipe_sampling_reads_the_pixels_mediapipe_reads():
    """MediaPipe's ImageToTensor samples source pixel (x * scale, y * scale): a 4x shrink picks every 4th pixel."""
    photo = np.random.default_rng(0).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    sampled = resize_image(tf.constant(photo), 16, "stretch", sampling="mediapipe").numpy()
    rows, cols = np.arange(16) * 4, np.arange(16) * 6
    assert np.abs(sampled - photo[rows][:, cols]).max() < 1e-3
    smoothed = resize_image(tf.constant(photo), 16, "stretch").numpy()
    assert smoothed.std() < 0.6 * sampled.std()  # the antialiasing filter averages the noise away
    padded = resize_image(tf.constant(photo), 16, "pad", sampling="mediapipe").numpy()
    assert padded.shape == (16, 16, 3) and padded[:2].max() == 0 and padded[-2:].max() == 0
    with pytest.raises(ValueError, match="sampling"):
        ImagePreprocessing(sampling="cubic")


def fixed_point_reference(photo: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's uint8 bilinear warp (what MediaPipe resizes with), one output pixel at a time, from its definition:
    source position x * in / out rounded to 1/32 px, integer weights (32 - f) and f per axis, times 32, the sum
    rounded at 2^15, the border replicated."""
    height, width = photo.shape[:2]
    out = np.zeros((size, size, 3), np.float32)
    for row in range(size):
        y = int(np.rint(row * height / size * 32))
        for col in range(size):
            x = int(np.rint(col * width / size * 32))
            y0, x0, fy, fx = y // 32, x // 32, y % 32, x % 32
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            corners = photo[[y0, y0, y1, y1], [x0, x1, x0, x1]].astype(np.int64)  # (4, 3)
            weights = np.array([(32 - fy) * (32 - fx), (32 - fy) * fx, fy * (32 - fx), fy * fx]) * 32
            total = weights @ corners
            out[row, col] = (total + (1 << 14)) >> 15
    return out


def test_mediapipe_sampling_is_opencvs_fixed_point_warp_in_the_graph_and_in_numpy():
    """MediaPipe's CPU ImageToTensor resizes the uint8 photo with OpenCV's fixed-point bilinear warp; both of our
    resizes compute exactly its integers (tests/edge/test_mediapipe_pixels.py holds them to MediaPipe itself)."""
    from dlpipe.data.numpy_preprocess import resize_array

    rng = np.random.default_rng(1)
    for height, width, size in ((40, 56, 64), (37, 53, 30), (120, 90, 48)):
        photo = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        want = fixed_point_reference(photo, size)
        graph = resize_image(tf.constant(photo), size, "stretch", sampling="mediapipe").numpy()
        numpy = resize_array(photo, size, "stretch", sampling="mediapipe")
        np.testing.assert_array_equal(graph, want)
        np.testing.assert_array_equal(numpy, want)


def test_color_spaces_keep_three_channels_in_range():
    image = tf.random.uniform((8, 8, 3), 0, 255, seed=1)
    gray = convert_color(image, "grayscale").numpy()
    assert np.allclose(gray[..., 0], gray[..., 2])
    yuv = convert_color(image, "yuv").numpy()
    assert yuv.shape == (8, 8, 3) and yuv.min() >= 0 and yuv.max() <= 255
    assert not np.allclose(yuv, image.numpy())


def test_median_filter_removes_salt_noise_and_gaussian_smooths():
    image = np.full((16, 16, 3), 100, np.float32)
    image[5, 5] = 255
    median = apply_filter(tf.constant(image), "median", 3).numpy()
    assert median[5, 5, 0] == 100
    blurred = apply_filter(tf.constant(image), "gaussian", 3).numpy()
    assert 100 < blurred[5, 5, 0] < 255 and blurred[5, 6, 0] > 100


def test_preprocessing_rejects_bad_values():
    with pytest.raises(ValueError, match="resize"):
        ImagePreprocessing(resize="squash")
    with pytest.raises(ValueError, match="filter_size"):
        ImagePreprocessing(filter_size=2)


def test_augmentation_only_in_the_training_branch(color_folder):
    paths = sorted(str(p) for p in (color_folder / "red").iterdir())[:8]
    prep = ImagePreprocessing(image_size=24, resize="stretch")
    data = decoded_images(paths, [0] * 8, prep)
    augmenter = build_augmenter(flip="horizontal", brightness=0.3, contrast=0.3, noise=0.05, seed=3)
    evaluation = [x.numpy() for x, _ in batched(data, 8)]
    again = [x.numpy() for x, _ in batched(data, 8, augmenter=augmenter)]  # not training: untouched
    assert np.array_equal(evaluation[0], again[0])
    trained = next(iter(batched(data, 8, training=True, augmenter=augmenter)))[0].numpy()
    assert trained.min() >= 0 and trained.max() <= 255
    assert not np.allclose(np.sort(trained.ravel()), np.sort(evaluation[0].ravel()))
    assert build_augmenter(flip="none") is None


def test_flip_pair_flips_an_image_and_its_mask_together_half_the_time():
    mask = np.arange(6, dtype=np.int32).reshape(2, 3)
    image = np.stack([mask * 10, mask * 20, mask * 30], axis=-1).astype(np.float32)
    flips = []
    for got_image, got_mask in tf.data.Dataset.from_tensors((image, mask)).repeat(40).map(flip_pair(seed=1)):
        flipped = not np.array_equal(got_mask.numpy(), mask)
        want = mask[:, ::-1] if flipped else mask
        np.testing.assert_array_equal(got_mask.numpy(), want)
        np.testing.assert_array_equal(got_image.numpy()[..., 2], want * 30)  # the photo moved with its mask
        flips.append(flipped)
    assert 5 < sum(flips) < 35


def test_header_pixels_reads_every_format_without_decoding():
    import io

    import tensorflow as tf
    from PIL import Image

    from dlpipe.data.images import too_many_pixels
    from dlpipe.data.preprocess import header_pixels

    for fmt, (width, height) in (("JPEG", (37, 21)), ("PNG", (300, 7)), ("GIF", (65, 300)), ("BMP", (33, 44))):
        encoded = io.BytesIO()
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(encoded, fmt)
        assert int(header_pixels(tf.constant(encoded.getvalue()))) == width * height, fmt
        assert too_many_pixels(encoded.getvalue(), width * height) is None
        assert "over the limit" in too_many_pixels(encoded.getvalue(), width * height - 1)
    assert int(header_pixels(tf.constant(b"not an image"))) == 0
    assert int(header_pixels(tf.constant(b"\x89PNG\r\n\x1a\n"))) == 0  # truncated: zeros, not an error


def test_large_jpegs_decode_at_reduced_scale_with_nearly_the_same_model_input():
    from dlpipe.data.preprocess import preprocess_bytes

    rng = np.random.default_rng(0)
    smooth = np.kron(rng.uniform(0, 255, (12, 16, 3)), np.ones((64, 64, 1))).astype(np.uint8)  # 768 x 1024
    jpeg = tf.constant(encode(Image.fromarray(smooth), "JPEG"))
    png = tf.constant(encode(Image.fromarray(smooth), "PNG"))
    assert decode_image(jpeg, 90).shape == (96, 128, 3)  # 1/8: the smallest scale keeping >= 90 px
    assert decode_image(jpeg, 96).shape == (96, 128, 3) and decode_image(jpeg, 97).shape == (192, 256, 3)
    assert decode_image(jpeg, 400).shape == (768, 1024, 3)  # under twice the need: full size
    assert decode_image(png, 90).shape == (768, 1024, 3)  # only JPEG has DCT scaling
    reduced = ImagePreprocessing(image_size=64)
    assert reduced.decode_side() == 74  # the crop resizes the shorter side to 64 / 0.875
    full = preprocess_bytes(jpeg, ImagePreprocessing(image_size=64, reduced_decode=False)).numpy()
    scaled = preprocess_bytes(jpeg, reduced).numpy()
    assert scaled.shape == full.shape and np.abs(scaled - full).mean() < 4.0
