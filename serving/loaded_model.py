"""A trained dlpipe model ready to serve: turns request inputs into model inputs and back.

Image models get encoded image bytes and reuse `dlpipe.data.preprocess`
(the training code) to make pixels; text models get strings, tokenised the
way training did (inside the model, or WordPiece with the shipped vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dlpipe.errors import DataError


def top_labels(probabilities: np.ndarray, class_names: list[str], top_k: int, digits: int | None = None) -> list[dict[str, Any]]:
    """The `top_k` (at least 1) most likely classes as [{"label", "score"}], best first; scores rounded if `digits`."""
    order = np.argsort(-probabilities)[: max(1, min(top_k, len(class_names)))]
    scores = [float(probabilities[i]) for i in order]
    return [{"label": class_names[i], "score": round(s, digits) if digits is not None else s} for i, s in zip(order, scores)]


@dataclass
class LoadedModel:
    """One served version: the model's runtime (`dlpipe.models.runtimes`) plus its name and version."""

    name: str
    version: int
    runtime: Any  # a KerasRuntime: labels, preprocessing and predict(batch), tokenising text as training did

    @classmethod
    def load(cls, folder: str | Path, name: str, version: int) -> "LoadedModel":
        """Load a run or export folder holding model.keras, labels.txt and preprocessing.json."""
        from dlpipe.models.runtimes import KerasRuntime

        return cls(name, version, KerasRuntime(Path(folder) / "model.keras"))

    @property
    def kind(self) -> str:
        return self.runtime.kind

    @property
    def class_names(self) -> list[str]:
        return self.runtime.class_names

    def prepare(self, instance: Any) -> Any:
        """One request instance -> one model input; raises DataError with a clear reason."""
        if self.kind == "text":
            if not isinstance(instance, str):
                raise DataError("instances", f"model '{self.name}' takes text; send strings. Received: {type(instance).__name__}")
            return instance
        if not isinstance(instance, (bytes, bytearray)):
            raise DataError("instances", f"model '{self.name}' takes images; send {{\"b64\": \"<base64 JPEG/PNG>\"}}")
        return self._pixels(bytes(instance))

    def _pixels(self, data: bytes) -> np.ndarray:
        import tensorflow as tf

        from dlpipe.data.images import sniff_format
        from dlpipe.data.preprocess import preprocess_bytes

        if sniff_format(data[:16]) is None:
            raise DataError("image", "not a JPEG, PNG, GIF or BMP image")
        try:
            return preprocess_bytes(tf.constant(data), self.runtime.preprocessing).numpy()
        except tf.errors.OpError as error:
            raise DataError("image", f"cannot be decoded ({str(error.message).splitlines()[0]})") from None

    def predict(self, items: Sequence[Any]) -> np.ndarray:
        """Probabilities (N, classes) for prepared items (pixel arrays, or strings)."""
        return self.runtime.predict(np.stack(items) if self.kind == "image" else list(items))

    def describe(self, probabilities: np.ndarray, top_k: int = 1) -> dict[str, Any]:
        top = top_labels(probabilities, self.class_names, top_k)
        return {**top[0], "probabilities": [float(p) for p in probabilities], "top": top}

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind, "labels": self.class_names,
                "preprocessing": {"kind": self.kind, **self.runtime.preprocessing.to_dict()}}
