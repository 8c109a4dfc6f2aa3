"""Read a legacy (pre-zip) PyTorch state dict with the standard library and numpy, without torch.

Pretrained weights published as old-style `.pth` files (e.g. the EfficientNet-Lite0
package) must load where torch is not installed. The legacy layout is five pickles
(magic number, protocol version, system info, the state dict, the storage keys)
followed by one record per storage: an 8-byte little-endian element count, then the
raw little-endian elements.

Safety: `pickle` runs whatever callable a file names, so the unpickler resolves only
an allow-list (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the
`torch.*Storage` types) to harmless stand-ins; any other name is refused, and strided
views are bounds-checked before numpy touches the bytes.

Layout: each tensor is rebuilt from its storage with its stored offset and strides,
so it comes back with the PyTorch shape and the values torch would show, even when
the bytes are laid out differently (the Lite0 conv weights are non-contiguous views).
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import DataError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"

# torch storage type -> little-endian numpy dtype (element sizes are fixed; a file's
# `type_sizes` header describes C types on the saving machine, e.g. long=4 on Windows)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for `torch.FloatStorage` etc.: only its element type matters."""

    name: str


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _Tensor:
    """Stand-in for `torch._utils._rebuild_tensor_v2`: record where the tensor's values are."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor refers to something that is not a storage")
    shape, strides = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if len(shape) != len(strides) or any(n < 0 for n in shape) or any(s < 0 for s in strides) or int(offset) < 0:
        raise pickle.UnpicklingError(f"invalid tensor geometry size={shape} stride={strides} offset={offset}")
    return _Tensor(storage, int(offset), shape, strides)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a legacy state dict uses; everything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': not part of a PyTorch state dict")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage type, key, location, numel, view metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, _location, numel, view = pid[1:]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r:.80}")
        if view is not None:
            raise pickle.UnpicklingError("storage views (PyTorch < 0.4 files) are not supported")
        return _Storage(str(key), STORAGE_DTYPES[storage_type.name], int(numel))


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensor name -> numpy array with the PyTorch shape and dtype, in the file's order.

    Raises DataError for anything that is not a complete legacy state dict (a zip-format
    `.pth`, a truncated file, a pickle naming code outside the allow-list, ...).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(str(path), f"cannot read the weights file ({error.strerror or error})") from None
    if data.startswith(_ZIP_MAGIC):
        raise DataError(str(path), "this is a zip-format PyTorch file; only the legacy (pre-1.6) format is supported")
    try:
        tensors, storages = _parse(data)
        return {name: _materialise(tensor, storages[tensor.storage.key]) for name, tensor in tensors.items()}
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error) as error:
        raise DataError(str(path), f"not a readable legacy PyTorch state dict: {error}") from None


def _parse(data: bytes) -> tuple[dict[str, _Tensor], dict[str, np.ndarray]]:
    """The five pickles, then one raw record per storage key; checks the sizes add up to the file."""
    stream = io.BytesIO(data)
    unpickler = _RestrictedUnpickler(stream)
    if unpickler.load() != LEGACY_MAGIC:
        raise ValueError("wrong magic number")
    if unpickler.load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported protocol version")
    info = unpickler.load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise ValueError("only little-endian files are supported")
    state = unpickler.load()
    keys = unpickler.load()
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, _Tensor) for k, v in state.items()):
        raise ValueError("the pickle is not a flat dict of named tensors")
    wanted = {tensor.storage.key: tensor.storage for tensor in state.values()}
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(wanted):
        raise ValueError("the storage key list does not match the tensors")
    offset, storages = stream.tell(), {}
    for key in map(str, keys):
        storage = wanted[key]
        (count,) = struct.unpack_from("<q", data, offset)
        size = count * storage.dtype.itemsize
        if count != storage.numel or offset + 8 + size > len(data):
            raise ValueError(f"storage {key} is truncated or has the wrong size")
        storages[key] = np.frombuffer(data, dtype=storage.dtype, count=count, offset=offset + 8)
        offset += 8 + size
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} unexpected bytes after the last storage")
    return dict(state), storages


def _materialise(tensor: _Tensor, storage: np.ndarray) -> np.ndarray:
    """Apply offset and strides to the storage (bounds-checked), then copy to a native-endian array."""
    if any(n == 0 for n in tensor.shape):
        return np.zeros(tensor.shape, dtype=storage.dtype.newbyteorder("="))
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if last >= storage.size:
        raise ValueError(f"a tensor of shape {tensor.shape} reaches past the end of its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[tensor.offset:], shape=tensor.shape, strides=tuple(s * item for s in tensor.stride), writeable=False
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
