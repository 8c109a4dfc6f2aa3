"""The training graph's image preprocessing in NumPy and Pillow: the same pixels without importing TensorFlow.

Why: a deployed `.tflite` answers in a fraction of a second, but importing TensorFlow to prepare its input
costs 3-12 s. Each step here mirrors one of `dlpipe.data.preprocess` (the code that prepared the training
images): libjpeg's accurate DCT and its 1/2-1/8 scaled decode (Pillow's `draft`), EXIF orientation
(`PIL.ImageOps.exif_transpose`, JPEGs only, as the graph reads it), the antialiased resize as Pillow's
float ("F") bilinear resample (the triangle kernel TF's ScaleAndTranslate uses, crop windows through
`box`), MediaPipe's sampling grid, the size arithmetic in float32 as TF does it, the colour spaces and
the OpenCV filters. tests/data/test_numpy_preprocess.py holds the output within one level of the graph's
on real photos.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from dlpipe.data.preprocess_spec import COLOR_SPACES, FILTERS, RESIZE_MODES, SAMPLINGS, check_choice

JPEG_SCALES = (8, 4, 2)  # libjpeg's reduced decodes, largest first (the graph's `decode_image(min_side=...)`)
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # tf.image.rgb_to_grayscale
RGB_TO_YUV = np.array([[0.299, -0.14714119, 0.61497538],  # tf.image.rgb_to_yuv's kernel
                       [0.587, -0.28886916, -0.51496512],
                       [0.114, 0.43601035, -0.10001026]], np.float32)


class DecodeError(ValueError):
    """The bytes are not an image Pillow can decode; the message says why in Pillow's words."""


def decode_array(contents: bytes, min_side: int = 0, upright: bool = True) -> np.ndarray:
    """JPEG/PNG/GIF/BMP bytes -> uint8 (H, W, 3), as `preprocess.decode_image` decodes them.

    Grayscale is replicated, alpha dropped, palettes expanded, a GIF gives its first frame; a JPEG whose
    shorter side is at least twice `min_side` is decoded at 1/2, 1/4 or 1/8 scale, and turned upright by
    its EXIF orientation when `upright`.
    """
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "palette images with transparency": the graph ignores it too
            with Image.open(io.BytesIO(contents)) as image:
                is_jpeg = image.format == "JPEG"
                if is_jpeg and min_side > 0:
                    width, height = image.size
                    ratio = next((r for r in JPEG_SCALES if min(width, height) >= r * min_side), 1)
                    if ratio > 1:
                        image.draft(None, (width // ratio, height // ratio))
                image.load()
                if is_jpeg and upright:
                    image = ImageOps.exif_transpose(image)
                return _rgb(image)
    except Image.UnidentifiedImageError:  # its message names a BytesIO object, which says nothing to a user
        raise DecodeError("its header is not one Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # what Pillow raises for broken files
        raise DecodeError(str(error) or type(error).__name__) from None


def _rgb(image: Any) -> np.ndarray:
    """A decoded Pillow image -> uint8 (H, W, 3); 16-bit grays keep their high byte, as TF's uint8 decode does."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, np.uint8)


def resize_array(image: np.ndarray, size: int, mode: str = "stretch", crop_fraction: float = 0.875,
                 sampling: str = "antialias") -> np.ndarray:
    """uint8 or float (H, W, 3) -> float32 (size, size, 3) in [0, 255], as `preprocess.resize_image`."""
    check_choice("resize", mode, RESIZE_MODES)
    check_choice("sampling", sampling, SAMPLINGS)
    image = np.asarray(image)  # kept uint8: each path casts only the pixels it samples (a whole photo costs 0.5 ms)
    shape = np.array(image.shape[:2], np.float32)
    if mode == "stretch":
        out = _resample(image, (size, size), sampling)
    elif mode == "pad":
        out = _pad(image, shape, size, sampling)
    else:
        scale = np.float32(size / crop_fraction) / shape.min()
        new_shape = np.maximum(np.ceil(shape * scale).astype(np.int64), size)
        top, left = (new_shape[0] - size) // 2, (new_shape[1] - size) // 2
        if sampling == "antialias":
            out = _antialias(image, new_shape, (size, size), (top, left))
        else:
            out = _resample(image, new_shape, sampling)[top:top + size, left:left + size, :]
    return np.clip(out, 0.0, 255.0).astype(np.float32, copy=False)


def _pad(image: np.ndarray, shape: np.ndarray, size: int, sampling: str) -> np.ndarray:
    """Keep the aspect ratio, letterbox with zeros: `tf.image.resize_with_pad`'s sizes, or the graph's own for
    MediaPipe sampling."""
    if sampling == "antialias":
        target = np.float32(size)
        ratio = max(shape[1] / target, shape[0] / target)
        resized = (shape[0] / ratio, shape[1] / ratio)
        new_shape = (int(np.floor(resized[0])), int(np.floor(resized[1])))
        top, left = (max(0, int(np.floor((target - r) / np.float32(2)))) for r in resized)
        inner = _antialias(image, new_shape, new_shape, (0, 0))
    else:
        new_shape = tuple(np.clip(np.round(shape * np.float32(size / shape.max())).astype(np.int64), 1, size))
        top, left = (size - new_shape[0]) // 2, (size - new_shape[1]) // 2
        inner = _resample(image, new_shape, sampling)
    out = np.zeros((size, size, image.shape[2]), np.float32)
    out[top:top + inner.shape[0], left:left + inner.shape[1]] = inner[:size - top, :size - left]
    return out


def _resample(image: np.ndarray, shape: Any, sampling: str) -> np.ndarray:
    """float (H, W, 3) -> float (shape[0], shape[1], 3), bilinear: antialiased, or on MediaPipe's grid."""
    if sampling == "mediapipe":  # MediaPipe's fixed-point resize, bit for bit (see data/preprocess.py)
        return _opencv_fixed_point_bilinear(image, int(shape[0]), int(shape[1]))
    return _antialias(image, shape, shape, (0, 0))


def _antialias(image: np.ndarray, shape: Any, window: Any, offset: Any) -> np.ndarray:
    """The `window` (height, width) at `offset` of `image` antialias-resized to `shape`, without the rest.

    Pillow's float bilinear resample is TF's ScaleAndTranslate with the triangle kernel: the same kernel
    widened by the downscale factor and renormalised at the borders; `box` is the window in source pixels.
    """
    from PIL import Image

    height, width = image.shape[:2]
    scale_y = np.float32(shape[0]) / np.float32(height)
    scale_x = np.float32(shape[1]) / np.float32(width)
    box = (float(offset[1] / scale_x), float(offset[0] / scale_y),
           min(float((offset[1] + window[1]) / scale_x), width), min(float((offset[0] + window[0]) / scale_y), height))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F")
                           .resize((int(window[1]), int(window[0])), Image.Resampling.BILINEAR, box=box))
                for c in range(image.shape[2])]
    return np.stack(channels, axis=-1)


def _opencv_fixed_point_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's uint8 bilinear warp as MediaPipe resizes: positions on a 1/32-pixel grid, integer weights, whole
    levels (the same integers as `dlpipe.data.preprocess`'s graph), float32."""

    def axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.rint(np.arange(out_size, dtype=np.float64) * (in_size / out_size) * 32.0).astype(np.int32)
        low = position >> 5
        return np.clip(low, 0, in_size - 1), np.clip(low + 1, 0, in_size - 1), position & 31

    top, bottom, down = axis(image.shape[0], height)
    left, right, across = axis(image.shape[1], width)
    up, back = (32 - down)[:, None, None], down[:, None, None]
    before, after = (32 - across)[None, :, None], across[None, :, None]
    pixels = np.rint(image).astype(np.int32) if image.dtype != np.uint8 else image.astype(np.int32)
    upper, lower = pixels[top], pixels[bottom]
    total = ((np.take(upper, left, axis=1) * before + np.take(upper, right, axis=1) * after) * up
             + (np.take(lower, left, axis=1) * before + np.take(lower, right, axis=1) * after) * back) * 32
    return ((total + (1 << 14)) >> 15).astype(np.float32)


def convert_color_array(image: np.ndarray, space: str) -> np.ndarray:
    """float32 RGB [0, 255] -> the chosen colour space, 3 channels in [0, 255] (`preprocess.convert_color`)."""
    check_choice("color_space", space, COLOR_SPACES)
    if space == "grayscale":
        gray = np.tensordot(image, GRAY_WEIGHTS, axes=([-1], [0]))
        return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if space == "yuv":
        yuv = np.tensordot(image / np.float32(255.0), RGB_TO_YUV, axes=([-1], [0]))
        return (np.clip(yuv + np.float32([0.0, 0.5, 0.5]), 0.0, 1.0) * np.float32(255.0)).astype(np.float32)
    return image


def filter_pixels(image: np.ndarray, kind: str, size: int = 3) -> np.ndarray:
    """Gaussian or median smoothing with OpenCV of a float32 (H, W, 3) image, on its rounded uint8 pixels."""
    check_choice("filter", kind, FILTERS)
    if kind == "none":
        return image
    import cv2

    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    pixels = cv2.GaussianBlur(pixels, (size, size), 0) if kind == "gaussian" else cv2.medianBlur(pixels, size)
    return pixels.astype(np.float32)


def preprocess_image_bytes(contents: bytes, prep: Any) -> np.ndarray:
    """Encoded image bytes -> model input (image_size, image_size, 3) float32 in [0, 255]: the NumPy twin of
    `preprocess.preprocess_bytes` for an `ImagePreprocessing` (or a subclass)."""
    image = decode_array(contents, prep.decode_side(), getattr(prep, "exif_orientation", True))
    image = resize_array(image, prep.image_size, prep.resize, prep.crop_fraction, prep.sampling)
    image = convert_color_array(image, prep.color_space)
    return filter_pixels(image, prep.filter, prep.filter_size)
