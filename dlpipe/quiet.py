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


@contextlib.contextmanager
def captured_output(stdout: bool = True) -> Iterator[None]:
    """Send file descriptor 2 (and 1) to a temporary file for the duration; replay it if the block fails."""
    if verbose():
        yield
        return
    fds = (1, 2) if stdout else (2,)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            _restore(saved)
            sink.seek(0)
            os.write(2, sink.read()[-20000:])
            raise
        else:
            _restore(saved)


def _restore(saved: dict[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in saved.items():
        os.dup2(copy, fd)
        os.close(copy)
