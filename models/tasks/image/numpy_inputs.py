"""Photos read and prepared without TensorFlow, for runtimes that need none (a .tflite).

Why: importing TensorFlow costs seconds at every start, more than a .tflite takes to answer. The pixels
are the training graph's (`dlpipe.data.numpy_preprocess` mirrors `dlpipe.data.preprocess`); files are
decoded by a pool of threads (Pillow and NumPy release the GIL) a few batches ahead of the model, as
tf.data does on the graph path; a file that cannot be read becomes an error row, in the load stage's words.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from dlpipe.errors import DataError
from dlpipe.models.tasks.base import InputSet, PreparedBatch

if TYPE_CHECKING:
    from dlpipe.models.tasks.image.task import ImageTask

AHEAD_BATCHES = 2  # batches being decoded while the caller runs the model on the previous one


def read_batches(task: "ImageTask", inputs: InputSet, readable: list[str], prep: Any,
                 batch_size: int) -> Iterator[PreparedBatch]:
    """The `readable` inputs as model batches in input order (`task.numpy_input` per file), decoding ahead."""
    from dlpipe.models.runtimes import default_threads

    def read(key: str) -> tuple[Any, str | None]:
        path = inputs.payloads[key]
        try:
            with open(path, "rb") as handle:
                contents = handle.read()
            return task.numpy_input(contents, prep), None
        except (OSError, ValueError) as error:  # numpy_preprocess.DecodeError is a ValueError: Pillow's own words
            return None, decode_error(path, str(error))

    batch_size = max(1, batch_size)
    keys = iter(readable)
    with ThreadPoolExecutor(default_threads(), thread_name_prefix="dlpipe-decode") as pool:
        pending: deque = deque()

        def top_up() -> None:
            while len(pending) < AHEAD_BATCHES * batch_size:
                key = next(keys, None)
                if key is None:
                    return
                pending.append((key, pool.submit(read, key)))

        top_up()
        while pending:
            chunk, items, errors = [], [], {}
            while pending and len(chunk) < batch_size:
                key, future = pending.popleft()
                item, error = future.result()
                chunk.append(key)
                if error is None:
                    items.append(item)
                else:
                    errors[key] = error
                top_up()
            yield PreparedBatch(chunk, task.stack(items) if items else np.zeros((0,), np.float32), errors)


def decode_error(path: str, message: str) -> str:
    """Why a file could not be read, in the words the load stage uses (its header checks first)."""
    from dlpipe.data.images import check_image_file, sniff_format

    reason = check_image_file(path, verify=False)[0]
    if reason:
        return reason
    try:
        with open(path, "rb") as handle:
            kind = sniff_format(handle.read(16)) or "an image"
    except OSError:
        kind = "an image"
    return f"cannot be decoded as {kind} ({message}); delete or re-save it"


def prepare_bytes(task: "ImageTask", contents: bytes, prep: Any) -> Any:
    """One request's checked image bytes -> its model input; DataError("instance", why) if Pillow cannot decode it."""
    try:
        return task.numpy_input(contents, prep)
    except ValueError as error:  # numpy_preprocess.DecodeError: Pillow's own words
        raise DataError("instance", f"cannot be decoded ({error})") from None
