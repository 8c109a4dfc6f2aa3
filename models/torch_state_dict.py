"""Read a legacy (pre-zip) PyTorch state dict with the standard library and numpy only.

dlpipe ships pretrained weights that were published as PyTorch `.pth` files
but must not need torch to read them. The legacy format is five pickles
(magic number, protocol version, system info, the state dict, the storage
keys) followed by one raw little-endian record per storage. Unpickling is
restricted to the few names this format uses, so a hostile file cannot run
code.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import DataError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32,
                   "DoubleStorage": np.float64, "HalfStorage": np.float16}


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: Any
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a legacy state dict contains; anything else is refused."""

    _ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            from collections import OrderedDict

            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': not part of a PyTorch state dict")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        name = storage_type.name if isinstance(storage_type, _StorageType) else str(storage_type)
        return _StorageRef(key, _STORAGE_DTYPES[name], numel)


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """name -> numpy array (PyTorch shape, values laid out by the stored strides)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            unpickler = _RestrictedUnpickler(handle)
            if unpickler.load() != LEGACY_MAGIC:
                raise DataError(str(path), "not a legacy PyTorch file (wrong magic number)")
            unpickler.load()  # protocol version
            info = unpickler.load()
            if not info.get("little_endian", True):
                raise DataError(str(path), "big-endian PyTorch files are not supported")
            state = unpickler.load()
            keys = unpickler.load()
            storages: dict[str, np.ndarray] = {}
            dtypes = {ref.storage.key: ref.storage.dtype for ref in state.values() if isinstance(ref, _TensorRef)}
            for key in keys:
                (count,) = struct.unpack("<q", handle.read(8))
                dtype = np.dtype(dtypes.get(str(key), np.float32)).newbyteorder("<")
                data = handle.read(count * dtype.itemsize)
                if len(data) != count * dtype.itemsize:
                    raise DataError(str(path), f"file is truncated in storage {key}")
                storages[str(key)] = np.frombuffer(data, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, KeyError) as error:
        raise DataError(str(path), f"not a readable legacy PyTorch state dict ({error})") from None
    arrays: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            continue
        storage = storages[ref.storage.key]
        item = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[ref.offset:], shape=ref.shape, strides=tuple(s * item for s in ref.stride), writeable=False
        )
        arrays[name] = np.array(view, dtype=storage.dtype.newbyteorder("="))
    return arrays
