"""`wordpiece`: uncased WordPiece subwords with their vocab.txt, ids fed to the model.

Three vocabularies use it: MiniLM's pruned to `preprocess.max_tokens` pieces (recurrent and transformer models),
and the pretrained encoders' own full ones (`for_encoder`): MiniLM's, framed [CLS] ... [SEP] padded with [PAD],
and MPNet's, framed <s> ... </s> padded with <pad>. The framing follows from the vocabulary
(`dlpipe.data.wordpiece.special_tokens_of`), so one tokenizer serves all three and their artifacts all say
"wordpiece". The SavedModel runs the same tokenisation in the graph (`dlpipe.data.tf_wordpiece`, TensorFlow
Text ops); the .tflite takes MediaPipe's BERT inputs (ids, mask, segment_ids) and packs the vocab.txt in a
BertTokenizer process unit.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from dlpipe.errors import DataError, DlpipeError
from dlpipe.models.text_tokenizers.base import Encoder, TextTokenizer, TFLiteInputs, TrainingTokens

if TYPE_CHECKING:
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models.artifacts import SideFiles, StandardMetadata

MODEL_INPUTS = ("input_ids", "attention_mask")  # what a WordPiece Keras model takes (token_type_ids optional)
# the .tflite inputs (MediaPipe's BERT names) -> the Keras model's inputs
BERT_TFLITE_INPUTS = {"ids": "input_ids", "mask": "attention_mask", "segment_ids": "token_type_ids"}
# the .tflite inputs -> the encoder's arrays; None: zeros (one segment)
TFLITE_ALIASES = {"ids": "input_ids", "mask": "attention_mask", "segment_ids": None}
VOCAB_FILE = "vocab.txt"  # what the training side writes for a pruned vocabulary


class WordPieceTextTokenizer(TextTokenizer):
    name = "wordpiece"
    unit = "pieces"
    tflite_bytes_per_entry = 40  # vocab.txt twice and the unrolled graph (measured: 1.37 MB, 1.06 M params, 8,000 pieces)
    ids_fed = True

    def for_encoder(self, prep: "TextPreprocessing", vocab_file: str | Path) -> "TextPreprocessing":
        """`prep` for a pretrained encoder (MiniLM, MPNet) that reads its own full vocabulary."""
        return dataclasses.replace(prep, tokenizer=self.name, vocab_file=str(vocab_file))

    def runtime_vocabulary(self, prep: "TextPreprocessing") -> str:
        if not prep.vocab_file:
            raise DataError("preprocessing.json", "a wordpiece model names its vocab_file; export the model again")
        return Path(prep.vocab_file).name

    def side_files(self, model: Any, prep: "TextPreprocessing") -> dict[str, Path]:
        if not prep.vocab_file or not Path(prep.vocab_file).is_file():
            raise DataError(str(prep.vocab_file), "the WordPiece vocabulary is missing; it belongs beside the model")
        return {Path(prep.vocab_file).name: Path(prep.vocab_file)}

    def encoder(self, prep: "TextPreprocessing", vocabulary: Sequence[str] | str | Path) -> Encoder:
        """{"input_ids", "attention_mask"} by `dlpipe.data.wordpiece` from the vocab.txt (uncased, as the
        pretrained model was trained)."""
        from dlpipe.data.wordpiece import WordPieceTokenizer

        if not isinstance(vocabulary, (str, Path)):
            raise TypeError("a WordPiece encoder reads its vocab.txt: pass the file's path")
        tokenizer = WordPieceTokenizer.from_vocab_file(vocabulary)

        def encode(texts: Sequence[str]) -> dict[str, np.ndarray]:
            batch = tokenizer.encode(list(texts), max_length=prep.sequence_length)
            return {name: batch[name] for name in MODEL_INPUTS}

        return encode

    def describe(self, prep: "TextPreprocessing") -> str:
        return f"WordPiece (MiniLM's, lower-cased), {prep.max_tokens:,} pieces"

    def training_tokens(self, texts: list[str], prep: "TextPreprocessing", out_dir: Path,
                        embedding_dim: int | None) -> TrainingTokens:
        """MiniLM's WordPiece vocabulary pruned to max_tokens pieces, written as the run's vocab.txt; with
        MiniLM rows, each piece starts from its own."""
        from dlpipe import atomic
        from dlpipe.models.pretrained_embeddings import minilm_piece_matrix, minilm_piece_subset, minilm_wordpiece_tokens
        from dlpipe.models.text_classifiers import WordPieceIds

        ids = minilm_piece_subset(texts, prep.max_tokens)
        pieces = minilm_wordpiece_tokens()
        vocab_file = Path(out_dir) / VOCAB_FILE
        atomic.write_text(vocab_file, "".join(f"{pieces[i]}\n" for i in ids))
        weights = minilm_piece_matrix(ids, embedding_dim) if embedding_dim is not None else None
        return TrainingTokens(WordPieceIds(len(ids), prep.sequence_length), weights,
                              dataclasses.replace(prep, vocab_file=str(vocab_file)))

    def keras_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], Any]:
        return self.encoder(prep, side.file(self.runtime_vocabulary(prep)))

    def before_savedmodel_load(self) -> None:
        import tensorflow_text  # noqa: F401  (registers the ops of the in-graph WordPiece tokenizer)

    def tflite_aliases(self) -> Mapping[str, str | None]:
        return TFLITE_ALIASES

    def add_savedmodel_endpoints(self, archive: Any, model: Any, prep: "TextPreprocessing",
                                 files: Mapping[str, Path], outputs: Callable[[Any], dict[str, Any]],
                                 target: Path) -> None:
        """`serving_default` (text) through the in-graph tokenizer, whose lookup table is saved inside, and
        `serving_token_ids` (input_ids, attention_mask) for callers that tokenise themselves."""
        import tensorflow as tf

        from dlpipe.data.tf_wordpiece import TFWordPieceTokenizer

        vocab = _vocab(prep, files, target)
        length = prep.sequence_length
        _check_sequence_length(model, length, target)
        tokenizer = TFWordPieceTokenizer(str(vocab), length)
        archive.track(tokenizer)  # its lookup table (the vocabulary) is saved inside the SavedModel

        def from_ids(input_ids: Any, attention_mask: Any) -> dict[str, Any]:
            return outputs(model({"input_ids": input_ids, "attention_mask": attention_mask}, training=False))

        archive.add_endpoint("serving_default", lambda text: from_ids(**tokenizer(text)),
                             [tf.TensorSpec([None], tf.string, name="text")])
        archive.add_endpoint("serving_token_ids", from_ids, [tf.TensorSpec([None, length], tf.int32, name="input_ids"),
                                                             tf.TensorSpec([None, length], tf.int32, name="attention_mask")])

    def tflite_inputs(self, model: Any, prep: "TextPreprocessing") -> TFLiteInputs:
        """The model as it is: it already takes ids; the .tflite's inputs get MediaPipe's BERT names."""
        names = tuple(tensor.name for tensor in model.inputs)
        if not set(MODEL_INPUTS) <= set(names) <= set(BERT_TFLITE_INPUTS.values()):
            raise DlpipeError(f"export: a wordpiece model must take inputs {list(MODEL_INPUTS)}, not {list(names)}")
        lengths = {tensor.shape[1] for tensor in model.inputs} - {None}
        if lengths - {prep.sequence_length}:
            raise DlpipeError(f"export: the model takes sequences of {sorted(lengths)} tokens but preprocessing.json "
                              f"says sequence_length={prep.sequence_length}")
        # MiniLM as dlpipe builds it fixes the token types to 0: there segment_ids is an input it ignores
        return TFLiteInputs(model, None, {name: ours if ours in names else None
                                          for name, ours in BERT_TFLITE_INPUTS.items()})

    def tflite_id_remap(self, prep: "TextPreprocessing", files: Mapping[str, Path]) -> dict[int, int]:
        """MediaPipe's [CLS]/[SEP] -> MPNet's <s>/</s> (nothing for a BERT-framed vocabulary)."""
        from dlpipe.data.wordpiece import WordPieceTokenizer, bert_framing_remap

        vocab = files.get(Path(prep.vocab_file or "").name)
        return bert_framing_remap(WordPieceTokenizer.from_vocab_file(vocab).vocab) if vocab else {}

    def tflite_metadata(self, prep: "TextPreprocessing", files: Mapping[str, Path], calibration: Sequence[Any],
                        classes: int, target: Path) -> tuple["StandardMetadata | None", str]:
        """A BertTokenizer process unit with the vocab.txt packed in: MediaPipe lower-cases, splits, runs
        WordPiece and adds [CLS]/[SEP] as dlpipe's tokenizer does."""
        from dlpipe.models import tflite_metadata

        vocab = _vocab(prep, files, target)
        return (functools.partial(tflite_metadata.bert_text_classifier_metadata, vocab=Path(vocab).read_bytes()),
                f"Classifies text into {classes} classes. Inputs: WordPiece ids, mask and "
                f"segment ids of {prep.sequence_length} tokens ([CLS] text [SEP], lower-cased; an MPNet model maps "
                "[CLS]/[SEP] to its <s>/</s> inside the graph); MediaPipe's BertTokenizer makes them from the packed "
                "vocab.txt exactly as dlpipe does.")


def _vocab(prep: "TextPreprocessing", files: Mapping[str, Path], target: Path) -> Path:
    vocab = files.get(Path(prep.vocab_file or "").name)
    if not vocab:
        raise DataError(str(target), "a WordPiece model needs its vocab.txt to export; it belongs beside the model")
    return Path(vocab)


def _check_sequence_length(model: Any, length: int, folder: Path) -> None:
    for tensor in model.inputs:
        if len(tensor.shape) == 2 and tensor.shape[1] not in (None, length):
            raise DataError(str(folder), f"the model takes {tensor.shape[1]} tokens but preprocessing.sequence_length "
                                         f"is {length}; export with the sequence length it was trained with")
