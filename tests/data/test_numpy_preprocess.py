"""The NumPy/Pillow preprocessing (what a .tflite is fed without TensorFlow) gives the training graph's pixels.

Every resize recipe a run can be trained with, on real photos (the shared hymenoptera folder, its GIF
included) and on the formats and EXIF orientations the graph decodes: within one level of 255 of
`data.preprocess.preprocess_bytes` (measured: under 0.01 of a level without a filter; a filter rounds to
whole levels, so one level where a value sits on .5; MediaPipe's resize is the same integers in both).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import HYMENOPTERA
from dlpipe.data.numpy_preprocess import DecodeError, decode_array, preprocess_image_bytes
from dlpipe.data.preprocess_spec import ImagePreprocessing

RECIPES = {
    "crop-antialias-224": ImagePreprocessing(),
    "stretch-mediapipe-96": ImagePreprocessing(image_size=96, resize="stretch", sampling="mediapipe"),
    "crop-reduced-decode-96": ImagePreprocessing(image_size=96),  # JPEGs decoded at 1/2 scale
    "stretch-eighth-decode-32": ImagePreprocessing(image_size=32, resize="stretch"),  # at 1/8 scale
    "pad-antialias-260": ImagePreprocessing(image_size=260, resize="pad"),
    "pad-mediapipe-100": ImagePreprocessing(image_size=100, resize="pad", sampling="mediapipe"),
    "crop-mediapipe-128": ImagePreprocessing(image_size=128, sampling="mediapipe", crop_fraction=0.9),
    "full-decode-upscale-600": ImagePreprocessing(image_size=600, resize="stretch", reduced_decode=False),
    "grayscale": ImagePreprocessing(image_size=64, color_space="grayscale"),
    "yuv": ImagePreprocessing(image_size=64, color_space="yuv"),
    "gaussian": ImagePreprocessing(image_size=64, filter="gaussian", filter_size=5),
    "median": ImagePreprocessing(image_size=64, filter="median"),
    "no-exif": ImagePreprocessing(image_size=64, exif_orientation=False),
}


def graph_pixels(contents: bytes, prep: ImagePreprocessing) -> np.ndarray:
    import tensorflow as tf

    from dlpipe.data.preprocess import preprocess_bytes

    return preprocess_bytes(tf.constant(contents), prep).numpy()


def shared_photos() -> list[bytes]:
    """A dozen of the shared photos of both classes, and the folder's GIF."""
    photos = sorted(HYMENOPTERA.rglob("*.jpg"))[::21][:12] + sorted(HYMENOPTERA.rglob("*.gif"))
    assert len(photos) >= 12 and any(p.suffix == ".gif" for p in photos)
    return [p.read_bytes() for p in photos]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_numpy_pixels_equal_the_training_graphs_on_the_shared_photos(name: str) -> None:
    prep = RECIPES[name]
    for contents in shared_photos():
        ours = preprocess_image_bytes(contents, prep)
        assert ours.shape == (prep.image_size, prep.image_size, 3) and ours.dtype == np.float32
        assert np.abs(ours - graph_pixels(contents, prep)).max() <= 1.0


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_formats_and_exif_orientations_decode_as_the_graph_does() -> None:
    photo = Image.open(sorted((HYMENOPTERA / "ants").glob("*.jpg"))[3]).convert("RGB")
    big = photo.resize((1500, 1000))
    gray16 = (np.asarray(photo.convert("L"), np.uint16) * 257 + 100).astype(np.uint16)
    cases = {"png-rgba": _encoded(photo.convert("RGBA"), "PNG"), "png-palette": _encoded(photo.convert("P"), "PNG"),
             "png-16-bit-gray": _encoded(Image.fromarray(gray16), "PNG"), "bmp": _encoded(photo, "BMP"),
             "gif": _encoded(photo, "GIF"), "jpeg-gray": _encoded(photo.convert("L"), "JPEG"),
             "jpeg-progressive-big": _encoded(big, "JPEG", progressive=True)}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        cases[f"exif-{orientation}"] = _encoded(big if orientation == 6 else photo, "JPEG", exif=exif.tobytes())
    for name, contents in cases.items():
        for prep in (RECIPES["crop-antialias-224"], RECIPES["stretch-mediapipe-96"], RECIPES["no-exif"]):
            difference = np.abs(preprocess_image_bytes(contents, prep) - graph_pixels(contents, prep)).max()
            assert difference <= 1.0, (name, prep)
    upright = decode_array(cases["exif-6"])
    assert upright.shape[:2] == (1500, 1000)  # turned: the stored photo is 1500 wide


def test_undecodable_bytes_raise_decode_error_in_pillows_words() -> None:
    with pytest.raises(DecodeError, match="^its header is not one Pillow can read$"):
        decode_array(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    truncated = _encoded(Image.new("RGB", (64, 64), (200, 10, 10)), "JPEG")[:300]
    with pytest.raises(DecodeError):
        decode_array(truncated)
