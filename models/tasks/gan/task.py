"""The gan task: seeds in, generated images out (a `dlpipe run gan` generator as a runtime task).

An input is a seed, a whole number >= 0: `dlpipe predict RUN 0 1 2` generates the images of seeds 0, 1
and 2, a range `0-63` stands for every seed from 0 to 63, and a `.txt` file lists seeds, one per line
(blank lines and `#` comments skipped; a line that is not a seed gets an error row). A server instance
is a seed as a JSON number (`{"instances": [0, 1]}`). The seed chooses the latent vector
deterministically: `numpy.random.default_rng(seed).standard_normal(latent_dim)` as float32, so a seed
gives the same image from every artifact and on every machine, and `dlpipe generate --seed S --n N`
draws exactly the images of seeds S .. S+N-1.

The model's output is the generator's image (H, W, C) in [-1, 1] (tanh). A row names its seed, the
image's shape and mean pixel (0-255); with `--out FOLDER` each image is also written as
FOLDER/seed_N.png (rows in FOLDER/images.jsonl), and the server's answer carries the PNG as base64.
A generator has no labelled evaluation (`dlpipe evaluate` refuses; its quality is the Fréchet distance
in the run's metrics.json); labels.txt names the classes of the images it learnt to imitate, which a
seed does not choose (the generator is unconditional).
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import InputSet, LabelledData, PreparedBatch, Task, writer_folders

if TYPE_CHECKING:
    from dlpipe.models.artifacts import SideFiles

ROWS_FILE = "images.jsonl"
MAX_RANGE = 100_000  # seeds one range argument may stand for
SEED_HELP = "seeds are whole numbers >= 0, or ranges such as 0-63"
NO_EVALUATION = ("a generator has no labelled evaluation; its quality is the Fréchet distance per epoch in the "
                 "run's metrics.json (dlpipe run gan)")


@dataclass(frozen=True)
class GanPreprocessing:
    """How a seed becomes the generator's input: a standard-normal latent vector of `latent_dim` numbers."""

    latent_dim: int = 64
    latent: str = "numpy.random.default_rng(seed).standard_normal(latent_dim), float32"
    output: str = "image (H, W, C) in [-1, 1]; pixel = round((value + 1) * 127.5)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GanPreprocessing":
        if not isinstance(values.get("latent_dim"), int) or values["latent_dim"] < 1:
            raise DataError("preprocessing.json", f"latent_dim must be a whole number >= 1. Received: "
                                                  f"{values.get('latent_dim')!r}; export the model again")
        return cls(latent_dim=values["latent_dim"])


def latent_vectors(seeds: Sequence[int], latent_dim: int) -> np.ndarray:
    """(len(seeds), latent_dim) float32: each seed's own standard-normal draw (the same on every machine)."""
    rows = [np.random.default_rng(seed).standard_normal(latent_dim) for seed in seeds]
    return np.asarray(rows, np.float32).reshape(len(rows), latent_dim)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 pixels (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(images, np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def parse_seed(text: Any) -> int | None:
    """A seed (an int, or its text in ASCII digits, at most 20 of them) >= 0, or None."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text) if text >= 0 else None
    if isinstance(text, str) and text.strip().isascii() and text.strip().isdigit() and len(text.strip()) <= 20:
        return int(text.strip())
    return None


def _seed_range(text: str) -> list[int] | None:
    """'A-B' -> [A, ..., B] (inclusive), or None when `text` is not a range."""
    first, dash, last = text.strip().partition("-")
    start, end = parse_seed(first), parse_seed(last)
    if not dash or start is None or end is None:
        return None
    if end < start or end - start >= MAX_RANGE:
        raise DataError(text, f"a range of seeds runs from a smaller to a larger seed, at most {MAX_RANGE:,} of them")
    return list(range(start, end + 1))


def png_bytes(pixels: np.ndarray) -> bytes:
    """One uint8 image (H, W, 1 or 3) as PNG bytes (grayscale or RGB)."""
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ImageWriter:
    """`--out FOLDER` of a generator job: FOLDER/seed_N.png per seed, rows in FOLDER/images.jsonl.

    `--out NAME.jsonl` (or .csv) puts the rows there and the images in the folder NAME.
    """

    def __init__(self, out: Path):
        self.folder, self.rows_file = writer_folders(out, ROWS_FILE, "generator")

    def write(self, key: str, payload: Any, output: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
        from dlpipe import atomic

        path = self.folder / f"seed_{payload}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing_file(path) as tmp:
            tmp.write_bytes(png_bytes(to_pixels(output)))
        return {"image": str(path)}


class GanTask(Task):
    """Seeds -> latent vectors (N, latent_dim) float32; outputs (N, H, W, C) generated images in [-1, 1]."""

    name = "gan"
    exporters_module = "dlpipe.models.tasks.gan.export"
    description = "image generation: a seed in, a generated image out"

    def preprocessing_from_dict(self, values: dict[str, Any]) -> GanPreprocessing:
        return GanPreprocessing.from_dict(values)

    # --- raw inputs: seeds ----------------------------------------------------------------------
    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        """Seeds, ranges (0-63) and .txt files of seeds, in the order given; a repeated seed is generated once."""
        inputs = InputSet()
        for source in sources:
            path = Path(source)
            if path.is_dir():
                raise DataError(str(source), f"is a folder; give seeds or a .txt file of seeds ({SEED_HELP})")
            if path.is_file():
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                for number, line in enumerate(lines, start=1):
                    text = line.split("#", 1)[0].strip()
                    if text:
                        self._add(inputs, text, f"{source}:{number}")
                continue
            seed = parse_seed(source)
            if seed is None and _seed_range(source) is None:
                raise DataError(str(source), f"is neither a seed nor a file of seeds ({SEED_HELP})")
            self._add(inputs, source, str(source))
        return inputs

    @staticmethod
    def _add(inputs: InputSet, text: str, where: str) -> None:
        seed = parse_seed(text)
        try:
            seeds = [seed] if seed is not None else _seed_range(text)
        except DataError as error:
            seeds, reason = None, error.reason
        else:
            reason = f"{text!r} is not a seed ({SEED_HELP})"
        if seeds is None:
            inputs.add(where, error=reason)
            return
        for value in seeds:
            if str(value) not in inputs.payloads:
                inputs.add(str(value), value)

    def batches(self, inputs: InputSet, prep: GanPreprocessing, batch_size: int) -> Iterator[PreparedBatch]:
        readable = [key for key in inputs.ids if key not in inputs.errors]
        for start in range(0, len(readable), max(1, batch_size)):
            chunk = readable[start:start + max(1, batch_size)]
            yield PreparedBatch(chunk, latent_vectors([inputs.payloads[key] for key in chunk], prep.latent_dim), {})

    def prepare(self, raw: Any, prep: GanPreprocessing) -> np.ndarray:
        seed = parse_seed(raw)
        if seed is None:
            raise DataError("instance", f"this model takes seeds: send whole numbers >= 0, e.g. "
                                        f'{{"instances": [0, 1, 2]}}. Received: {raw!r}')
        return latent_vectors([seed], prep.latent_dim)[0]

    def stack(self, items: Sequence[Any]) -> np.ndarray:
        return np.stack([np.asarray(item, np.float32) for item in items])

    def row_fields(self, payload: Any) -> dict[str, Any]:
        return {"seed": payload}

    def labelled_data(self, path: Path) -> LabelledData:
        raise DataError(str(path), NO_EVALUATION)

    def check_labels(self, labels: Sequence[str], class_names: list[str], data: str) -> None:
        """Nothing to check: there are no labelled data (`labelled_data` refuses)."""

    def score(self, labels: Sequence[Any], outputs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
        raise DataError("labels", NO_EVALUATION)

    def output_writer(self, out: Path | None, inputs: InputSet, draw: Path | None = None) -> ImageWriter | None:
        """With --out, each generated image as a PNG."""
        if draw is not None:
            raise DataError("--draw", "a generator has nothing to draw on; --out FOLDER writes each image as a PNG")
        return ImageWriter(out) if out is not None else None

    # --- feeding each format ----------------------------------------------------------------------
    def keras_feed(self, prep: GanPreprocessing, side: "SideFiles") -> Callable[[Any], Any]:
        return lambda batch: np.asarray(batch, np.float32)

    def savedmodel_predict(self, loaded: Any, prep: GanPreprocessing, side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        if "serving_default" not in loaded.signatures:
            raise DataError(str(side.folder), "SavedModel has no serving_default signature; export it again with "
                                              "dlpipe export")
        signature = loaded.signatures["serving_default"]
        return lambda batch: signature(latent=tf.constant(np.asarray(batch, np.float32)))["image"].numpy()

    def tflite_feed(self, prep: GanPreprocessing, side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        return lambda batch, details: [np.asarray(batch, np.float32)]

    # --- outputs ------------------------------------------------------------------------------
    def describe(self, output: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> dict[str, Any]:
        """The image's shape [H, W, C] and mean pixel (0-255); the seed is the row's input."""
        mean = float(to_pixels(output).mean())
        return {"shape": [int(size) for size in np.shape(output)],
                "mean_pixel": round(mean, digits) if digits is not None else mean}

    def console_text(self, row: dict[str, Any]) -> str:
        height, width, channels = row["shape"]
        written = f" -> {row['image']}" if "image" in row else ""
        return f"seed {row['seed']}: {height}x{width}x{channels} image, mean pixel {row['mean_pixel']:.1f}{written}"

    def answer(self, output: np.ndarray, class_names: list[str], top_k: int) -> dict[str, Any]:
        """An HTTP answer: shape and mean pixel, and the image as a base64 PNG."""
        return {**self.describe(output, class_names, top_k),
                "image_png": {"b64": base64.b64encode(png_bytes(to_pixels(output))).decode()}}

    def parity(self, reference: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        """How closely an export's images follow the Keras generator's for the same seeds; None when none compared.

        `image_agreement` (also `top1_agreement`, what `--artifact auto` compares) is the share of images
        whose every pixel is within one grey level of the Keras image; `max_abs_diff` is in the generator's
        [-1, 1] output, `max_pixel_diff` in grey levels.
        """
        reference, outputs = np.asarray(reference, np.float64), np.asarray(outputs, np.float64)
        if not reference.size:
            return {"image_agreement": None, "top1_agreement": None, "max_abs_diff": None, "max_pixel_diff": None,
                    "count": 0}
        levels = np.abs(to_pixels(reference).astype(np.int16) - to_pixels(outputs).astype(np.int16))
        per_image = levels.reshape(len(levels), -1).max(axis=1)
        agreement = float(np.mean(per_image <= 1))
        return {"image_agreement": agreement, "top1_agreement": agreement,
                "max_abs_diff": float(np.max(np.abs(reference - outputs))), "max_pixel_diff": int(per_image.max()),
                "count": int(len(reference))}


TASK = GanTask  # registered by dlpipe.models.tasks.TASK_MODULES
