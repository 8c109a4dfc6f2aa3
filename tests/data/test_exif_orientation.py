"""Phone photos come with an EXIF orientation: the graph decode turns them upright as Pillow's exif_transpose does."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from conftest import HYMENOPTERA
from dlpipe.data.exif import exif_orientation
from dlpipe.data.preprocess import ImagePreprocessing, decode_image, preprocess_bytes


def photo(size: tuple[int, int] = (48, 32)) -> Image.Image:
    """A real (asymmetric) photo, small: every orientation gives different pixels."""
    return Image.open(sorted((HYMENOPTERA / "ants").glob("*.jpg"))[3]).convert("RGB").resize(size)


def jpeg_with(image: Image.Image, exif: bytes | None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **({"exif": exif} if exif is not None else {}))
    return buffer.getvalue()


def orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def big_endian_exif(value: int) -> bytes:
    """A Motorola-order TIFF block (Pillow writes Intel order): IFD0 with one SHORT entry."""
    entry = struct.pack(">HHLHH", 0x0112, 3, 1, value, 0)
    return b"Exif\0\0MM\0*" + struct.pack(">L", 8) + struct.pack(">H", 1) + entry + b"\0\0\0\0"


def pillow_upright(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_decodes_as_pillow_exif_transpose(orientation):
    data = jpeg_with(photo(), orientation_exif(orientation))
    ours = decode_image(tf.constant(data)).numpy()
    reference = pillow_upright(data)
    assert int(exif_orientation(tf.constant(data))) == orientation
    assert ours.shape == reference.shape == ((32, 48, 3) if orientation <= 4 else (48, 32, 3))
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1  # the same bytes, the same libjpeg DCT


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_big_endian_exif_and_reduced_decode(orientation):
    data = jpeg_with(photo((192, 128)), big_endian_exif(orientation))
    reference = pillow_upright(data)
    assert decode_image(tf.constant(data)).shape == reference.shape
    reduced = decode_image(tf.constant(data), 32).numpy()  # 1/4 scale by DCT scaling, then turned
    expected = np.asarray(Image.fromarray(reference).resize(reduced.shape[1::-1], Image.BOX)).astype(int)
    assert reduced.shape[:2] == (reference.shape[0] // 4, reference.shape[1] // 4)
    assert np.abs(reduced.astype(int) - expected).mean() < 8  # coarse: a turned photo would be ~40 off


def test_malformed_exif_never_crashes_and_reads_as_upright():
    good = jpeg_with(photo(), orientation_exif(6))
    start = good.index(b"Exif\0\0")
    broken = [
        b"", b"\xff\xd8\xff", good[: start + 12],  # truncated before and inside the TIFF block
        good[:start + 6] + b"XX*\0" + good[start + 10:],  # no byte order
        good[:start + 10] + b"\xff\xff\xff\xff" + good[start + 14:],  # IFD0 offset far past the block
        good[:start - 4] + b"\x00\x04" + good[start - 2:],  # an APP1 length too short for its content
        jpeg_with(photo(), orientation_exif(9)), jpeg_with(photo(), orientation_exif(0)),  # out of range
        jpeg_with(photo(), b"Exif\0\0II*\0\x08\0\0\0\xff\xff"),  # 65535 entries announced, none there
    ]
    for data in broken:
        assert int(exif_orientation(tf.constant(data))) == 1, data[:40]
    rng = np.random.default_rng(0)
    for _ in range(200):  # random damage in the header: an orientation in 1-8, never an error
        damaged = bytearray(good)
        for index in rng.integers(0, start + 60, size=rng.integers(1, 6)):
            damaged[index] = rng.integers(0, 256)
        assert 1 <= int(exif_orientation(tf.constant(bytes(damaged)))) <= 8
    png = io.BytesIO()
    photo().save(png, "PNG")
    assert int(exif_orientation(tf.constant(png.getvalue()))) == 1


def test_training_predict_and_segmentation_paths(tmp_path: Path):
    """tf.data (training, batch jobs) and the eager predict/serve path turn the photo; segmentation does not."""
    from dlpipe.data.datasets import decoded_images
    from dlpipe.models.tasks import get_task

    upright = photo((40, 24))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone stores it; orientation 6 turns it back
    data = jpeg_with(stored, orientation_exif(6))
    (tmp_path / "phone.jpg").write_bytes(data)
    prep = ImagePreprocessing(image_size=24, resize="stretch", reduced_decode=False)
    expected = preprocess_bytes(tf.constant(jpeg_with(upright, None)), prep).numpy()
    in_dataset = next(iter(decoded_images([str(tmp_path / "phone.jpg")], None, prep))).numpy()
    for ours in (in_dataset, get_task("image").prepare(data, prep)):
        assert np.abs(ours - expected).mean() < 6  # two JPEG encodings of the same photo
        assert np.abs(ours - preprocess_bytes(tf.constant(data), ImagePreprocessing(
            image_size=24, resize="stretch", exif_orientation=False)).numpy()).mean() > 15
    segment = get_task("segment").preprocessing_from_dict({"image_size": 24})
    assert segment.exif_orientation is False  # masks are drawn on the stored pixels
    assert decode_image(tf.constant(data), upright=False).shape == (40, 24, 3)


def test_exported_savedmodel_turns_image_bytes_upright(tmp_path: Path):
    """The SavedModel that takes image bytes reads the tag in its graph: a 'top is bright' model answers right."""
    import keras

    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export
    from dlpipe.models.runtimes import load_runtime

    inputs = keras.Input((8, 8, 3))
    head = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, head(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))))
    rows = np.repeat(np.arange(8) < 4, 8 * 3).astype(np.float32)  # weight on the top four rows
    head.set_weights([np.stack([rows, 1 - rows], axis=1) * 0.5, np.zeros(2, np.float32)])
    prep = ImagePreprocessing(image_size=8, resize="stretch")
    request = ExportRequest(artifacts.Bundle("image", ["top", "bottom"], prep))
    folder = export(model, "savedmodel", tmp_path, request)
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:16] = 255  # bright top half
    stored = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_180)  # bright bottom; orientation 3 turns it
    sideways = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90)  # bright left; orientation 6 turns it
    answer = load_runtime(folder).loaded.signatures["serving_default"](image_bytes=tf.constant([
        jpeg_with(stored, orientation_exif(3)), jpeg_with(sideways, orientation_exif(6)), jpeg_with(stored, None)]))
    assert [label.decode() for label in answer["label"].numpy()] == ["top", "top", "bottom"]
