"""What a text tokenizer answers: the one place that knows how a text model's strings become token ids.

Why: a text model's tokenisation shows up in every part of its life (training builds the vocabulary, the runtime
encodes, the SavedModel takes raw strings, the .tflite takes ids and describes its tokenizer for MediaPipe, the
vocabulary travels as a side file). Each way of tokenising is one `TextTokenizer` subclass, looked up once by the
name in preprocessing.json (`dlpipe.models.text_tokenizers.tokenizer_for`), so no other module asks which one it
is. TensorFlow and Keras are imported inside the methods: `dlpipe config` lists tokenizers without them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from dlpipe.errors import DataError

if TYPE_CHECKING:
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models.artifacts import SideFiles, StandardMetadata

Encoder = Callable[[Sequence[str]], dict[str, np.ndarray]]  # texts -> int32 id arrays keyed by model input name


@dataclass(frozen=True)
class TFLiteInputs:
    """The ids-in part of a model that TFLite converts, and how the .tflite's inputs reach it.

    model: the model from the token ids on; new_input: the Keras input to rebuild `model` on (None: keep its
    own); names: .tflite input name -> the Keras input it feeds (None: an input the model ignores).
    """

    model: Any
    new_input: Any
    names: Mapping[str, str | None]


@dataclass(frozen=True)
class TrainingTokens:
    """What the training side builds from the training texts: the classifier's token source, its pretrained
    embedding rows (None: learnt from scratch) and the preprocessing spec the run saves (with its vocab file)."""

    source: Any
    weights: Any
    prep: "TextPreprocessing"


class TextTokenizer(ABC):
    """One way of turning text into a text classifier's token ids; subclasses register under `name`."""

    name = ""
    unit = "tokens"  # what one vocabulary entry is called in summaries ("words", "pieces")
    tflite_bytes_per_entry = 0  # what one vocabulary entry adds to a .tflite (models/text_catalog.py)
    ids_fed = False  # True: the Keras model takes ids, so training encodes its splits with `encoder` up front

    # -- the vocabulary and the Python-side encoder (runtime, training splits, .tflite feeds) -------------------

    @abstractmethod
    def runtime_vocabulary(self, prep: "TextPreprocessing") -> str:
        """The side file `encoder` reads, by name (beside the artifact or packed in the .tflite)."""

    @abstractmethod
    def side_files(self, model: Any, prep: "TextPreprocessing") -> dict[str, Path]:
        """The files an export of `model` carries beside it (file name -> path), e.g. its vocabulary."""

    @abstractmethod
    def encoder(self, prep: "TextPreprocessing", vocabulary: Sequence[str] | str | Path) -> Encoder:
        """A function texts -> the int32 id arrays the model's ids-in form takes. Build once, reuse: it is costly."""

    @abstractmethod
    def describe(self, prep: "TextPreprocessing") -> str:
        """One line for the preprocess stage's summary."""

    # -- training -------------------------------------------------------------------------------------------

    @abstractmethod
    def training_tokens(self, texts: list[str], prep: "TextPreprocessing", out_dir: Path,
                        embedding_dim: int | None) -> TrainingTokens:
        """The token source a recurrent or transformer classifier is built on; embedding_dim: the width of
        MiniLM's pretrained rows to start from, None for none."""

    # -- runtime feeds ------------------------------------------------------------------------------------

    @abstractmethod
    def keras_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], Any]:
        """A batch of strings -> what the .keras model takes."""

    def before_savedmodel_load(self) -> None:
        """Register whatever ops the exported SavedModel's tokenizer uses (nothing by default)."""

    def tflite_feed(self, prep: "TextPreprocessing",
                    side: "SideFiles") -> Callable[[Any, list[dict[str, Any]]], list[np.ndarray]]:
        """(batch of strings, the interpreter's input details) -> one array per .tflite input, matched by name."""
        encode = self.encoder(prep, side.file(self.runtime_vocabulary(prep)))

        def feed(batch: Any, details: list[dict[str, Any]]) -> list[np.ndarray]:
            encoded = encode(list(batch))
            return [self._input_for(detail["name"], encoded, side) for detail in details]

        return feed

    def tflite_aliases(self) -> Mapping[str, str | None]:
        """.tflite input names that are not encoder keys -> the encoder's array (None: zeros)."""
        return {}

    def _input_for(self, tensor_name: str, encoded: dict[str, np.ndarray], side: "SideFiles") -> np.ndarray:
        """The encoder's array for one .tflite input: its name as exported ("serving_default_ids:0" -> "ids");
        files exported before the current names match by the encoder's key inside the name."""
        name = tensor_name.rsplit(":", 1)[0].removeprefix("serving_default_")
        aliases = self.tflite_aliases()
        if name in encoded:
            return encoded[name]
        if name in aliases:
            alias = aliases[name]
            return np.zeros_like(next(iter(encoded.values()))) if alias is None else encoded[alias]
        matches = [key for key in encoded if key in tensor_name]
        if len(matches) != 1:
            raise DataError(str(side.folder), f"the .tflite input '{tensor_name}' is none of "
                                              f"{sorted(set(encoded) | set(aliases))}; export the model again "
                                              "with dlpipe export")
        return encoded[matches[0]]

    # -- exports --------------------------------------------------------------------------------------------

    @abstractmethod
    def add_savedmodel_endpoints(self, archive: Any, model: Any, prep: "TextPreprocessing",
                                 files: Mapping[str, Path], outputs: Callable[[Any], dict[str, Any]],
                                 target: Path) -> None:
        """Add `serving_default` (text: string[N]) and any other endpoint to a SavedModel export archive;
        `outputs` turns the model's probabilities into the signature's outputs."""

    @abstractmethod
    def tflite_inputs(self, model: Any, prep: "TextPreprocessing") -> TFLiteInputs:
        """The ids-in part of `model` that TFLite converts (LiteRT has no string ops), and its input names."""

    def tflite_id_remap(self, prep: "TextPreprocessing", files: Mapping[str, Path]) -> dict[int, int]:
        """Ids MediaPipe's tokenizer feeds -> the ids the model was trained on, replaced inside the graph."""
        return {}

    @abstractmethod
    def tflite_metadata(self, prep: "TextPreprocessing", files: Mapping[str, Path], calibration: Sequence[Any],
                        classes: int, target: Path) -> tuple["StandardMetadata | None", str]:
        """The standard text-classifier metadata writer (the tokenizer's MediaPipe process unit bound in) and the
        file's description; (None, "") when MediaPipe has no tokenizer that reproduces these ids."""
