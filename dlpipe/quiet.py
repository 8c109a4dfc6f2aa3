"""Keep TensorFlow's C++ chatter out of the user's terminal unless they ask for it.

TensorFlow reads its log level once, when it is first imported, so
`quiet_tensorflow` must run before anything imports it; the CLI calls it at
import time. `captured_output` silences what C++ code writes straight to the
process's stdout/stderr (the TFLite converter's MLIR dump), showing it only
with `--verbose` (`DLPIPE_VERBOSE=1`) or when the wrapped call fails.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
import threading
from typing import Any, Iterator

VERBOSE_ENV = "DLPIPE_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_tensorflow() -> None:
    """Silence TensorFlow's and absl's C++ logs (CUDA probing, cuInit errors, oneDNN notes) unless verbose."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # no GPU is asked for on a machine without one: skip the CUDA driver probe and its errors
    if not os.path.exists("/dev/nvidia0") and not os.path.exists("/dev/nvidiactl"):
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    # what TensorFlow's libraries print while loading comes before absl reads any log level
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport("tensorflow"))


class _QuietImport(importlib.abc.MetaPathFinder):
    """Runs the first import of one top-level module with the process's stderr captured."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once: let the normal finders locate the real module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with captured_output(stdout=False):
            self.loader.exec_module(module)


_LOCK = threading.Lock()
_CAPTURED: dict[int, list[int]] = {}  # descriptor -> [a copy of what it was before the first block, open blocks]
_SINK: list[Any] = []  # the temporary file every captured descriptor writes to while any block is open


@contextlib.contextmanager
def captured_output(stdout: bool = True) -> Iterator[None]:
    """Send file descriptor 2 (and 1) to a temporary file for the duration; replay it if the block fails.

    Blocks may overlap across threads (a batch job's worker threads each make an interpreter for a new batch
    size): the first to begin redirects a descriptor and the last to end restores it. Each block saving and
    restoring on its own once left stderr pointing at a deleted file for the rest of the process: a later
    block saved the first one's redirection as "the original" and put it back last.
    """
    if verbose():
        yield
        return
    fds = (1, 2) if stdout else (2,)
    sys.stdout.flush()
    sys.stderr.flush()
    with _LOCK:
        if not _CAPTURED:
            _SINK.append(tempfile.TemporaryFile())
        for fd in fds:
            if fd not in _CAPTURED:
                _CAPTURED[fd] = [os.dup(fd), 0]
                os.dup2(_SINK[0].fileno(), fd)
            _CAPTURED[fd][1] += 1
    try:
        yield
    except BaseException:
        _release(fds, replay=True)
        raise
    else:
        _release(fds, replay=False)


def _release(fds: tuple[int, ...], replay: bool) -> None:
    """End one block: restore each descriptor no other block still captures; on failure, show what was captured."""
    sys.stdout.flush()
    sys.stderr.flush()
    with _LOCK:
        sink = _SINK[0]
        captured = b""
        if replay:
            sink.seek(0)
            captured = sink.read()[-20000:]
        for fd in fds:
            _CAPTURED[fd][1] -= 1
            if _CAPTURED[fd][1] == 0:
                copy, _ = _CAPTURED.pop(fd)
                os.dup2(copy, fd)
                os.close(copy)
        if not _CAPTURED:
            _SINK.pop().close()
        if captured:  # to the real stderr, even while another block still captures descriptor 2
            os.write(_CAPTURED[2][0] if 2 in _CAPTURED else 2, captured)
