"""The image preprocessing spec (`ImagePreprocessing`), without TensorFlow.

Why its own module: a deployed `.tflite` reads its preprocessing.json and prepares photos in NumPy/Pillow
(`dlpipe.data.numpy_preprocess`); importing the TensorFlow graph code (`dlpipe.data.preprocess`, which
re-exports these names) only to read the spec would cost seconds at every start.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

RESIZE_MODES = ("stretch", "pad", "crop")
SAMPLINGS = ("antialias", "mediapipe")
COLOR_SPACES = ("rgb", "grayscale", "yuv")
FILTERS = ("none", "gaussian", "median")


@dataclass(frozen=True)
class ImagePreprocessing:
    """Everything that turns encoded bytes into the model's input tensor.

    resize: "stretch" ignores the aspect ratio; "pad" keeps it and letterboxes;
    "crop" resizes the shorter side to image_size / crop_fraction and takes the
    centre (the ImageNet evaluation recipe: 256 -> 224 for crop_fraction 0.875).
    sampling: "antialias" filters before downsampling (the least aliased input);
    "mediapipe" samples bilinearly on MediaPipe Tasks' grid (source = destination
    x scale, no filter), so with resize="stretch" an exported .tflite sees the same
    pixels in MediaPipe's ImageClassifier as in dlpipe.
    reduced_decode: a JPEG at least twice as large as the resize needs is decoded
    at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling (see `decode_image`); not
    with sampling="mediapipe", since MediaPipe decodes at full size.
    exif_orientation: a JPEG is turned upright as its EXIF Orientation tag says
    (phone photos), as Pillow's `ImageOps.exif_transpose` does; off for tasks
    whose labels (masks, boxes) are drawn on the stored pixels.
    """

    image_size: int = 224
    resize: str = "crop"
    crop_fraction: float = 0.875
    sampling: str = "antialias"
    color_space: str = "rgb"
    filter: str = "none"
    filter_size: int = 3
    max_pixels: int = 50_000_000  # larger images are refused before decoding (see images.too_many_pixels)
    reduced_decode: bool = True
    exif_orientation: bool = True

    def decode_side(self) -> int:
        """The shorter side the resize needs from the decoder: larger JPEGs may be decoded at reduced scale."""
        if not self.reduced_decode or self.sampling == "mediapipe":
            return 0
        return int(math.ceil(self.image_size / self.crop_fraction)) if self.resize == "crop" else self.image_size

    def __post_init__(self) -> None:
        check_choice("resize", self.resize, RESIZE_MODES)
        check_choice("sampling", self.sampling, SAMPLINGS)
        check_choice("color_space", self.color_space, COLOR_SPACES)
        check_choice("filter", self.filter, FILTERS)
        if self.image_size < 8:
            raise ValueError(f"`image_size` must be at least 8. Received: image_size={self.image_size}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"`crop_fraction` must be in (0, 1]. Received: crop_fraction={self.crop_fraction}")
        if self.filter_size < 1 or self.filter_size % 2 == 0:
            raise ValueError(f"`filter_size` must be a positive odd number. Received: filter_size={self.filter_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ImagePreprocessing":
        """From a preprocessing.json, ignoring keys that are not ours (such as "kind")."""
        return cls(**{key: value for key, value in values.items() if key in cls.__dataclass_fields__})


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
