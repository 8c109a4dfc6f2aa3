"""SavedModel export for text classifiers: raw strings in, the tokenisation inside the graph.

`serving_default` takes `text` (string[N]) whatever the model: TextVectorization
models (recurrent, transformer) already take strings; WordPiece models (MiniLM)
get the in-graph tokenizer of `dlpipe.data.tf_wordpiece` in front, so clients
send text and never need the vocabulary. WordPiece models also get
`serving_token_ids` (input_ids, attention_mask) for callers that tokenise
themselves. Outputs match the image SavedModel: probabilities, label, score.

A WordPiece SavedModel uses TensorFlow Text ops: whatever loads it must
`import tensorflow_text` first (TF Serving: a build with the TF Text ops).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from dlpipe import atomic
from dlpipe.data.text import TextPreprocessing
from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.models.export_formats import labelled_outputs


def export_text_savedmodel(model: keras.Model, folder: str | Path, class_names: list[str], prep: TextPreprocessing,
                           vocab_file: str | Path | None = None) -> Path:
    """SavedModel with `serving_default` (text: string[N]), plus `serving_token_ids` for WordPiece models.

    `vocab_file` is the WordPiece vocabulary's path; it defaults to `prep.vocab_file`, which
    is only a bare file name when `prep` was read back from a run's preprocessing.json
    (then pass the run folder's copy, e.g. `run_dir / prep.vocab_file`).
    """
    folder = Path(folder)

    def outputs(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        return labelled_outputs(probabilities, class_names)

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    archive = artifacts.export_archive(model)
    vocab = None
    if prep.tokenizer == "vectorize":
        archive.add_endpoint("serving_default", lambda text: outputs(model(text, training=False)), [text_spec])
    elif prep.tokenizer == "wordpiece":
        from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer

        vocab = vocab_file or prep.vocab_file
        if not vocab:
            raise DataError(str(folder), "a WordPiece model needs its vocab.txt to export; pass vocab_file")
        length = prep.sequence_length
        _check_sequence_length(model, length, folder)
        tokenizer = TFWordPieceTokenizer(vocab, length)
        archive.track(tokenizer)  # its lookup table (the vocabulary) is saved inside the SavedModel

        def from_ids(input_ids: tf.Tensor, attention_mask: tf.Tensor) -> dict[str, tf.Tensor]:
            return outputs(model({"input_ids": input_ids, "attention_mask": attention_mask}, training=False))

        archive.add_endpoint("serving_default", lambda text: from_ids(**tokenizer(text)), [text_spec])
        archive.add_endpoint("serving_token_ids", from_ids, [tf.TensorSpec([None, length], tf.int32, name="input_ids"),
                                                             tf.TensorSpec([None, length], tf.int32, name="attention_mask")])
    else:
        raise DataError(str(folder), f"unknown text tokenizer {prep.tokenizer!r}; expected 'vectorize' or 'wordpiece'")
    with atomic.replacing_dir(folder) as tmp:
        archive.write_out(str(tmp), verbose=False)
        artifacts.write_labels(tmp, class_names)
        artifacts.write_preprocessing(tmp, {"kind": "text", **prep.to_dict()})
        if vocab:  # for clients that tokenise in Python (serving_token_ids); the graph does not read it
            artifacts.copy_beside(vocab, tmp)
    return folder


def _check_sequence_length(model: keras.Model, length: int, folder: Path) -> None:
    for tensor in model.inputs:
        if len(tensor.shape) == 2 and tensor.shape[1] not in (None, length):
            raise DataError(str(folder), f"the model takes {tensor.shape[1]} tokens but preprocessing.sequence_length "
                                         f"is {length}; export with the sequence length it was trained with")
