"""Decode, resize, colour-convert and filter one image: the single preprocessing path.

Training, evaluation, export and `dlpipe predict` all call `load_image` /
`preprocess_bytes`, so a deployed model sees exactly what it was trained on.
Output is float32 RGB in [0, 255]; normalisation happens inside the model.
"""

from __future__ import annotations

import tensorflow as tf

# the spec lives in a TensorFlow-free module (a .tflite is prepared in NumPy without importing this one)
from dlpipe.data.preprocess_spec import (  # re-exported: callers import them from here
    COLOR_SPACES, FILTERS, RESIZE_MODES, SAMPLINGS, ImagePreprocessing, check_choice as _check_choice,
)


def _plain_graph(function):
    """Trace `function` as written, without AutoGraph: its branches are explicit `tf.cond`/`tf.case`, and converting
    the module's source cost about 2 s at the start of every batch job and server (it parses the code)."""
    return tf.autograph.experimental.do_not_convert(function)


@_plain_graph
def decode_image(contents: tf.Tensor, min_side: int = 0, upright: bool = True) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes -> uint8 (H, W, 3), turned upright by the JPEG's EXIF orientation (`upright`).

    Grayscale is replicated to three channels, alpha is dropped, palette images
    are expanded, and an animated GIF gives its first frame. The format is read
    from the bytes, so a GIF named .jpg still decodes.

    With `min_side`, a JPEG whose shorter side is at least twice `min_side` is
    decoded at reduced scale (1/2, 1/4 or 1/8, the smallest that keeps the
    shorter side >= min_side): libjpeg's DCT scaling, the mechanism behind
    Pillow's `Image.draft()`, skips most of the inverse DCT and the full-size
    buffer. It runs inside the graph (`tf.io.decode_jpeg(ratio=...)`), so the
    tf.data pipelines of training and the batch job use it as well.
    """
    # JPEGs with libjpeg's accurate integer DCT, as Pillow, OpenCV and MediaPipe decode them (TF's default is the
    # fast one, up to about 10 levels off)
    def full_jpeg() -> tf.Tensor:
        return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")

    def other() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    jpeg = full_jpeg
    if min_side > 0:
        def jpeg() -> tf.Tensor:
            short = tf.reduce_min(tf.image.extract_jpeg_shape(contents)[:2])
            scaled = [(short >= ratio * min_side,
                       lambda r=ratio: tf.io.decode_jpeg(contents, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"))
                      for ratio in (8, 4, 2)]
            return tf.case(scaled, default=full_jpeg, exclusive=False)

    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")
    image = tf.cond(is_jpeg, jpeg, other)
    if upright:
        from dlpipe.data.exif import upright as turn_upright

        image = turn_upright(image, contents)
    image.set_shape([None, None, 3])
    return image


@_plain_graph
def resize_image(image: tf.Tensor, size: int, mode: str = "stretch", crop_fraction: float = 0.875,
                 sampling: str = "antialias") -> tf.Tensor:
    """uint8 or float (H, W, 3) -> float32 (size, size, 3) in [0, 255]."""
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    if mode == "stretch":
        out = _resample(image, tf.constant([size, size]), sampling)
    elif mode == "pad" and sampling == "antialias":
        out = tf.image.resize_with_pad(image, size, size, antialias=True)
    elif mode == "pad":
        new_shape = tf.cast(tf.round(shape * (size / tf.reduce_max(shape))), tf.int32)
        new_shape = tf.clip_by_value(new_shape, 1, size)
        top, left = (size - new_shape[0]) // 2, (size - new_shape[1]) // 2
        out = tf.image.pad_to_bounding_box(_resample(image, new_shape, sampling), top, left, size, size)
    elif mode == "crop":
        scale = (size / crop_fraction) / tf.reduce_min(shape)
        new_shape = tf.cast(tf.math.ceil(shape * scale), tf.int32)
        new_shape = tf.maximum(new_shape, size)
        top = (new_shape[0] - size) // 2
        left = (new_shape[1] - size) // 2
        if sampling == "antialias":
            out = _resample_window(image, new_shape, tf.stack([top, left]), size)
        else:
            out = _resample(image, new_shape, sampling)[top : top + size, left : left + size, :]
    else:
        _check_choice("resize", mode, RESIZE_MODES)
    out = tf.clip_by_value(out, 0.0, 255.0)
    out.set_shape([size, size, 3])
    return out


def _resample(image: tf.Tensor, shape: tf.Tensor, sampling: str) -> tf.Tensor:
    """float (H, W, 3) -> float (shape[0], shape[1], 3), bilinear."""
    _check_choice("sampling", sampling, SAMPLINGS)
    if sampling == "mediapipe":
        return _opencv_fixed_point_bilinear(image, shape)
    return tf.image.resize(image, shape, antialias=True)


def _opencv_fixed_point_bilinear(image: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """MediaPipe's resize, bit for bit: OpenCV's `warpPerspective` of the uint8 photo, bilinear in fixed point.

    MediaPipe's CPU ImageToTensor maps output pixel (x, y) to source (x * in / out, y * in / out) (no half-pixel
    centres), rounds that position to 1/32 of a pixel, weighs the four neighbours by integer 1/32 fractions
    (weights summing to 2^15) and rounds the sum to a whole level, replicating the border. Measured through an
    identity model in MediaPipe's ImageClassifier (BENCHMARKS.md, multi-label): equal on every pixel when both
    start from the same decoded photo. A sharp multi-label head (log-sum-exp near the maximum) moved a score by
    up to 0.12 on half a level, so only exact pixels make the .tflite answer in MediaPipe as in dlpipe.
    `numpy_preprocess` computes the same integers.
    """
    pixels = tf.cast(tf.round(image), tf.int32)

    def axis(in_size: tf.Tensor, out_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        scale = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
        position = tf.cast(tf.round(tf.range(out_size, dtype=tf.float64) * scale * 32.0), tf.int32)  # 1/32 px
        low = position // 32
        return (tf.clip_by_value(low, 0, in_size - 1), tf.clip_by_value(low + 1, 0, in_size - 1),
                position - low * 32)

    top, bottom, down = axis(tf.shape(pixels)[0], shape[0])
    left, right, across = axis(tf.shape(pixels)[1], shape[1])
    up, back = (32 - down)[:, None, None], down[:, None, None]
    before, after = (32 - across)[None, :, None], across[None, :, None]
    upper, lower = tf.gather(pixels, top, axis=0), tf.gather(pixels, bottom, axis=0)
    total = ((tf.gather(upper, left, axis=1) * before + tf.gather(upper, right, axis=1) * after) * up
             + (tf.gather(lower, left, axis=1) * before + tf.gather(lower, right, axis=1) * after) * back) * 32
    return tf.cast((total + (1 << 14)) // (1 << 15), tf.float32)


def _resample_window(image: tf.Tensor, shape: tf.Tensor, offset: tf.Tensor, size: int) -> tf.Tensor:
    """The (size, size) window at `offset` of `image` antialias-resized to `shape`, without the rest of it.

    Why: the centre crop throws away about half of the resized photo; computing only the
    window (the kernel `tf.image.resize` runs, with a translation) costs 1.9 instead of 3.1 ms
    per 500x339 photo here, and matches resize-then-crop to 0.01 of a level.
    """
    scale = tf.cast(shape, tf.float32) / tf.cast(tf.shape(image)[:2], tf.float32)
    return tf.raw_ops.ScaleAndTranslate(images=image[None], size=[size, size], scale=scale,
                                        translation=-tf.cast(offset, tf.float32), kernel_type="triangle",
                                        antialias=True)[0]


def convert_color(image: tf.Tensor, space: str) -> tf.Tensor:
    """float32 RGB [0, 255] -> the chosen colour space, still 3 channels in [0, 255].

    Grayscale keeps three identical channels so pretrained RGB backbones still fit.
    """
    if space == "rgb":
        return image
    if space == "grayscale":
        return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    if space == "yuv":
        yuv = tf.image.rgb_to_yuv(image / 255.0)
        shifted = yuv + tf.constant([0.0, 0.5, 0.5])
        return tf.clip_by_value(shifted, 0.0, 1.0) * 255.0
    _check_choice("color_space", space, COLOR_SPACES)
    return image


def _opencv_filter(kind: str, size: int):
    """A numpy function (float32 image -> float32 image) running one OpenCV filter: the TensorFlow-free path's own."""
    from dlpipe.data.numpy_preprocess import filter_pixels

    return lambda image: filter_pixels(image, kind, size)


def apply_filter(image: tf.Tensor, kind: str, size: int = 3) -> tf.Tensor:
    """Gaussian or median smoothing with OpenCV on a float32 (H, W, 3) image."""
    if kind == "none":
        return image
    _check_choice("filter", kind, FILTERS)
    out = tf.numpy_function(_opencv_filter(kind, int(size)), [image], tf.float32, stateful=False)
    out.set_shape(image.shape)
    return out


def known_image_format(contents: tf.Tensor) -> tf.Tensor:
    """In-graph twin of `images.sniff_format`: True where encoded bytes start like a JPEG, PNG, GIF or BMP."""
    from dlpipe.data.images import IMAGE_SIGNATURES

    contents = tf.convert_to_tensor(contents, tf.string)
    starts = [tf.equal(tf.strings.substr(contents, 0, len(signature)), signature) for signature, _ in IMAGE_SIGNATURES]
    return tf.reduce_any(tf.stack(starts), axis=0)


def header_pixels(contents: tf.Tensor) -> tf.Tensor:
    """In-graph twin of `images.too_many_pixels`: width x height (int64) read from one image's header, no decoding.

    JPEG through `tf.image.extract_jpeg_shape`; PNG (IHDR), GIF (logical screen) and BMP (DIB header) from
    their fixed header fields; 0 for anything else (the decoder then says what is wrong).
    """
    padded = tf.strings.join([contents, b"\0" * 32])  # a truncated header reads as zeros, not out of range

    def field(offset: int, length: int, little_endian: bool) -> tf.Tensor:
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, length), tf.uint8), tf.int64)
        weights = tf.constant([256 ** i for i in (range(length) if little_endian else reversed(range(length)))], tf.int64)
        return tf.reduce_sum(raw * weights)

    def signed32(value: tf.Tensor) -> tf.Tensor:  # BMP heights are negative for top-down images
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))

    head = tf.strings.substr(contents, 0, 8)
    return tf.case([
        (tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"),
         lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64))),
        (tf.equal(head, b"\x89PNG\r\n\x1a\n"), lambda: field(16, 4, False) * field(20, 4, False)),
        (tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), lambda: field(6, 2, True) * field(8, 2, True)),
        (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), lambda: signed32(field(18, 4, True)) * signed32(field(22, 4, True))),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


@_plain_graph
def preprocess_bytes(contents: tf.Tensor, prep: ImagePreprocessing) -> tf.Tensor:
    """Encoded image bytes -> model input (image_size, image_size, 3) float32 in [0, 255]."""
    image = decode_image(contents, prep.decode_side(), prep.exif_orientation)
    image = resize_image(image, prep.image_size, prep.resize, prep.crop_fraction, prep.sampling)
    image = convert_color(image, prep.color_space)
    return apply_filter(image, prep.filter, prep.filter_size)


@_plain_graph
def load_image(path: tf.Tensor, prep: ImagePreprocessing) -> tf.Tensor:
    """A file path -> model input; see `preprocess_bytes`."""
    return preprocess_bytes(tf.io.read_file(path), prep)

