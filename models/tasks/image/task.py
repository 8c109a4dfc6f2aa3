"""The image task: encoded photos in, class probabilities out.

Every path from a file to the model's input goes through
`dlpipe.data.preprocess`, the code that prepared the training images.
"""

from __future__ import annotations

import copy
import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import ClassificationTask, InputSet, LabelledData, PreparedBatch

if TYPE_CHECKING:
    from dlpipe.data.preprocess_spec import ImagePreprocessing
    from dlpipe.models.artifacts import SideFiles


class ImageTask(ClassificationTask):
    """Images (JPEG, PNG, GIF, BMP) -> float32 RGB pixels (N, S, S, 3) in [0, 255]; normalisation is in the model."""

    name = "image"
    exporters_module = "dlpipe.models.tasks.image.export"
    description = "image classification: a folder of photos, one sub-folder per class"
    # "tensorflow": photos are decoded by the training graph (tf.data); "numpy": by its NumPy/Pillow twin, for
    # runtimes that need no TensorFlow (see `without_tensorflow`)
    decoder = "tensorflow"

    def without_tensorflow(self) -> "ImageTask":
        """This task decoding photos in NumPy/Pillow (`dlpipe.data.numpy_preprocess`, the training pixels within
        one level), so a .tflite answers without importing TensorFlow."""
        twin = copy.copy(self)
        twin.decoder = "numpy"
        return twin

    def batches_in_flight(self) -> int:
        """One for the NumPy decoder: its threads decode ahead, so one batch at a time gets every core on the
        runtime's own interpreters; two replicas would each pack the weights again on their first batch (the
        default int8 file, 245 photos, fresh processes: the cold job at 121-130 images/s against 114-121 with
        two). tf.data's graph path keeps two (a Keras model runs concurrent calls itself)."""
        return 1 if self.decoder == "numpy" else super().batches_in_flight()

    def register_layers(self) -> None:
        from dlpipe.models import unknown_layer  # noqa: F401  (registers UnknownGate: the unknown answer)

    def preprocessing_from_dict(self, values: dict[str, Any]) -> "ImagePreprocessing":
        from dlpipe.data.preprocess_spec import ImagePreprocessing

        return ImagePreprocessing.from_dict(values)

    def collect_inputs(self, sources: Sequence[str]) -> InputSet:
        """Files as given, folders searched recursively for images (sorted), .txt files read as lists of paths,
        quoted globs (`'photos/**/*.jpg'`) expanded; every input listed or found is a row.

        An input's id is its path as printable text (`display_name`: a name that is not valid UTF-8 gets
        \\xNN escapes); the payload is the path itself, which the decoder opens whatever its bytes. A listed
        path that is missing or not a file keeps its id with the reason, so the job still answers the rest;
        a command-line argument that names nothing is a one-line error (a typo, not data).
        """
        from dlpipe.data.images import display_name

        inputs = InputSet()
        for item in sources:
            path = Path(item)
            if path.is_file() and path.suffix.lower() == ".txt":
                for listed in _listed_paths(path):
                    _add_input(inputs, listed)
            elif path.exists():
                _add_input(inputs, str(item))
            elif any(char in str(item) for char in "*?["):
                matches = sorted(glob.glob(str(item), recursive=True))
                if not matches:
                    raise DataError(display_name(item), "matches no file")
                for match in matches:
                    _add_input(inputs, match)
            else:
                raise DataError(display_name(item), "no such file or folder")
        return inputs

    def batches(self, inputs: InputSet, prep: "ImagePreprocessing", batch_size: int) -> Iterator[PreparedBatch]:
        """Decoding runs in parallel (tf.data, or threads for the NumPy decoder) while the caller runs the model;
        unreadable files become errors."""
        from dlpipe.data.images import too_many_pixels

        oversized = {}
        for key in inputs.ids:  # refused from the header, before anything is decoded
            if key not in inputs.errors:
                reason = too_many_pixels(inputs.payloads[key], prep.max_pixels)
                if reason:
                    oversized[key] = reason
        if oversized:
            yield PreparedBatch(list(oversized), np.zeros((0,), np.float32), oversized)
        readable = [key for key in inputs.ids if key not in inputs.errors and key not in oversized]
        if self.decoder == "numpy":
            from dlpipe.models.tasks.image.numpy_inputs import read_batches

            yield from read_batches(self, inputs, readable, prep, batch_size)
            return
        yield from self._graph_batches(inputs, readable, prep, batch_size)

    def _graph_batches(self, inputs: InputSet, readable: list[str], prep: Any, batch_size: int) -> Iterator[PreparedBatch]:
        """`readable` decoded by tf.data, `model_input` per file; files the decoder drops become errors."""
        import tensorflow as tf

        from dlpipe.data.images import tf_path

        decoded: Iterator[tuple[Any, Any]] = iter(())
        if readable:
            ds = tf.data.Dataset.from_tensor_slices((tf.range(len(readable), dtype=tf.int64),
                                                     [tf_path(inputs.payloads[key]) for key in readable]))
            ds = ds.map(lambda i, p: (i, self.model_input(p, prep)), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
            decoded = iter(ds.ignore_errors().batch(batch_size).prefetch(2))
        done = 0  # readable[:done] have been yielded; a batch's indices are positions in `readable`
        for indices, images in decoded:
            good = set(indices.numpy().tolist())
            chunk = readable[done:max(good) + 1]  # the files the decoder dropped in between are errors
            errors = {key: _decode_error(inputs.payloads[key]) for i, key in enumerate(chunk, start=done) if i not in good}
            done += len(chunk)
            yield PreparedBatch(chunk, _numpy(images), errors)
        if done < len(readable):
            tail = readable[done:]
            yield PreparedBatch(tail, np.zeros((0,), np.float32), {key: _decode_error(inputs.payloads[key]) for key in tail})

    def prepare(self, raw: Any, prep: "ImagePreprocessing") -> np.ndarray:
        from dlpipe.data.images import sniff_format, too_many_pixels

        if not isinstance(raw, (bytes, bytearray)):
            raise DataError("instance", 'this model takes images; send {"b64": "<base64 JPEG/PNG>"}')
        data = bytes(raw)
        if sniff_format(data[:16]) is None:
            raise DataError("instance", "not a JPEG, PNG, GIF or BMP image")
        oversized = too_many_pixels(data, prep.max_pixels)
        if oversized:
            raise DataError("instance", oversized)
        if self.decoder == "numpy":
            from dlpipe.models.tasks.image.numpy_inputs import prepare_bytes

            return prepare_bytes(self, data, prep)
        import tensorflow as tf

        try:
            return _numpy(_compiled(self, prep)(tf.constant(data)))
        except tf.errors.OpError:
            pass
        try:  # run eagerly again: its error names the problem without the graph's node and function names
            return _numpy(self.input_from_bytes(tf.constant(data), prep))
        except tf.errors.OpError as error:
            raise DataError("instance", f"cannot be decoded ({str(error.message).splitlines()[0]})") from None

    def model_input(self, path: Any, prep: Any) -> Any:
        """A file path tensor -> the model input tensor(s) of one image, inside tf.data (a subclass may add fields)."""
        from dlpipe.data.preprocess import load_image

        return load_image(path, prep)

    def input_from_bytes(self, contents: Any, prep: Any) -> Any:
        """Encoded bytes (a string tensor) -> the model input tensor(s) of one image, as `model_input` gives."""
        from dlpipe.data.preprocess import preprocess_bytes

        return preprocess_bytes(contents, prep)

    def numpy_input(self, contents: bytes, prep: Any) -> Any:
        """Encoded bytes -> the model input of one image as `input_from_bytes` gives it, in NumPy/Pillow (raises
        ValueError, Pillow's reason, when the bytes cannot be decoded)."""
        from dlpipe.data.numpy_preprocess import preprocess_image_bytes

        return preprocess_image_bytes(contents, prep)

    def stack(self, items: Sequence[Any]) -> np.ndarray:
        return np.stack([np.asarray(item, np.float32) for item in items])

    def labelled_data(self, path: Path) -> LabelledData:
        """A class-per-folder directory, or `builtin:NAME` (its fixed test split)."""
        from dlpipe.data.builtin_datasets import builtin_folders, is_builtin
        from dlpipe.data.images import display_name, scan_image_folder

        names = None
        if is_builtin(str(path)):
            builtin = builtin_folders(str(path))
            path, names = builtin.test, list(builtin.class_names)
        if not path.is_dir():
            raise DataError(str(path), "an image model is evaluated on a folder with one sub-folder of images per class")
        folder = scan_image_folder(path, verify=False)  # unreadable files become errors when `batches` reads them
        inputs = InputSet()
        for item in folder.paths:
            inputs.add(display_name(item), item)
        labels = [(names or folder.class_names)[label] for label in folder.labels]
        return LabelledData(inputs, labels, [{"path": item.path, "reason": item.reason} for item in folder.skipped])

    def keras_feed(self, prep: "ImagePreprocessing", side: "SideFiles") -> Callable[[Any], Any]:
        return lambda batch: np.asarray(batch, np.float32)

    def savedmodel_predict(self, loaded: Any, prep: "ImagePreprocessing", side: "SideFiles") -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        signature = _signature(loaded, "serving_pixels", side)
        return lambda batch: signature(pixels=tf.constant(np.asarray(batch, np.float32)))["probabilities"].numpy()

    def tflite_feed(self, prep: "ImagePreprocessing", side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        return lambda batch, details: [np.asarray(batch, np.float32)]


_GRAPHS: dict[tuple[type, str], Any] = {}


def _compiled(task: "ImageTask", prep: Any) -> Any:
    """`task.input_from_bytes` for one image as one compiled graph, made once per task class and preprocessing.

    Eager execution pays Python overhead for each of its ~20 ops (15.8 vs 7.9 ms per photo measured in the
    server); the graph runs them in one call, from any number of threads at once.
    """
    import tensorflow as tf

    key = (type(task), repr(prep))
    if key not in _GRAPHS:
        _GRAPHS[key] = tf.function(lambda contents: task.input_from_bytes(contents, prep),
                                   input_signature=[tf.TensorSpec([], tf.string)])
    return _GRAPHS[key]


def _numpy(tensors: Any) -> Any:
    """A tensor, or a dict of tensors (e.g. pixels and sizes), as NumPy."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda tensor: tensor.numpy(), tensors)


def _listed_paths(listing: Path) -> list[str]:
    """The paths a .txt list names, one a line (`file://` prefixes dropped): UTF-16/32 with a byte-order mark,
    else UTF-8, where undecodable bytes stay as they are (a file name need not be UTF-8)."""
    from dlpipe.data.text_encoding import detect_encoding

    data = listing.read_bytes()
    codec, skip = detect_encoding(data)
    try:
        text = data[skip:].decode(codec, "surrogateescape" if codec == "utf-8" else "strict")
    except UnicodeDecodeError as error:
        raise DataError(str(listing), f"is not valid {codec.upper()} (byte {error.start + skip}); save it as UTF-8") from None
    return [line.strip().removeprefix("file://") for line in text.splitlines() if line.strip()]


def _add_input(inputs: InputSet, item: str) -> None:
    """A folder: its images, searched recursively; a file: itself; anything else: a row with the reason.
    An input met again (listed twice, or in a listed folder too) keeps its first place: one row per input."""
    from dlpipe.data.images import IMAGE_EXTENSIONS, display_name

    path = Path(item)
    if path.is_dir():
        for found in sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
            _add_once(inputs, display_name(found), found, None)
    elif path.is_file():
        _add_once(inputs, display_name(item), item, None)
    else:
        _add_once(inputs, display_name(item), None, "no such file" if not path.exists() else "not a regular file")


def _add_once(inputs: InputSet, key: str, payload: str | None, error: str | None) -> None:
    if key not in inputs.payloads and key not in inputs.errors:
        inputs.add(key, payload, error)


def _decode_error(path: str) -> str:
    """Why the decoder dropped a file, in the words the load stage uses."""
    from dlpipe.data.images import check_image_file

    return check_image_file(path, verify=True)[0] or "could not be decoded"


def _signature(loaded: Any, name: str, side: "SideFiles") -> Any:
    if name not in loaded.signatures:
        raise DataError(str(side.folder), f"SavedModel has no {name} signature; export it again with dlpipe export")
    return loaded.signatures[name]


TASK = ImageTask  # registered by dlpipe.models.tasks.TASK_MODULES
