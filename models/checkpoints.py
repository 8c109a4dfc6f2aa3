"""Strict copying of a safetensors checkpoint into Keras variables, shared by the ported text encoders.

Why strict: a checkpoint of another architecture must fail loudly, naming the file and the first tensors
that do not fit, instead of half-loading and training from a silently broken start.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from dlpipe.errors import DataError

# HF checkpoint tensor name -> (Keras variable, transpose? (torch Linear stores (out, in)))
Targets = dict[str, tuple[keras.Variable, bool]]


def read_safetensors(path: str | Path, hint: str) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file; a missing or unreadable file is a DataError naming it."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), f"weights file not found; {hint}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise DataError(str(path), f"cannot read as safetensors: {exc}") from exc


def assign_strictly(path: str | Path, tensors: dict[str, np.ndarray], targets: Targets, ignored: tuple[str, ...],
                    architecture: str) -> None:
    """Fill every target from `tensors`: each tensor (bar `ignored`) must have a target of the same shape and
    every target a tensor."""
    unknown = sorted(set(tensors) - set(targets) - set(ignored))
    missing = sorted(set(targets) - set(tensors))
    if unknown or missing:
        raise DataError(
            str(path),
            f"not an {architecture} checkpoint: unexpected tensors {unknown[:5]}"
            f"{'...' if len(unknown) > 5 else ''}, missing tensors {missing[:5]}{'...' if len(missing) > 5 else ''}",
        )
    for key, (variable, transpose) in targets.items():
        value = tensors[key].T if transpose else tensors[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise DataError(
                str(path), f"tensor {key} has shape {tuple(value.shape)}, the model expects {tuple(variable.shape)}"
            )
        variable.assign(np.asarray(value, dtype=variable.dtype))


def block_targets(block, prefix: str, dense_names: dict[str, str], norm_names: dict[str, str]) -> Targets:
    """Targets of one `BertLayer`: its Dense and LayerNorm sub-layers under their HF module paths."""
    targets: Targets = {}
    for attr, hf in dense_names.items():
        dense = getattr(block, attr)
        targets[f"{prefix}{hf}.weight"] = (dense.kernel, True)
        targets[f"{prefix}{hf}.bias"] = (dense.bias, False)
    for attr, hf in norm_names.items():
        norm = getattr(block, attr)
        targets[f"{prefix}{hf}.weight"] = (norm.gamma, False)
        targets[f"{prefix}{hf}.bias"] = (norm.beta, False)
    return targets
