"""`words`: whole words by Keras `TextVectorization`, a layer inside the model (artifacts before the name said
"vectorize").

The .keras model and the SavedModel take raw strings; the .tflite takes the layer's int32 ids (the model is cut
after the layer) and ships the layer's vocabulary, one token a line, as vocabulary.txt. The Python encoder rebuilds
the layer from that file with the training settings, so its ids are the model's own.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from dlpipe.errors import DataError, DlpipeError
from dlpipe.models.text_tokenizers.base import Encoder, TextTokenizer, TFLiteInputs, TrainingTokens

if TYPE_CHECKING:
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models.artifacts import SideFiles, StandardMetadata

LAYER_NAME = "vectorize"  # the TextVectorization layer's name inside every dlpipe words model
VOCABULARY_FILE = "vocabulary.txt"  # its tokens in id order (line 1 "" for padding, line 2 "[UNK]")
TOKEN_IDS = "token_ids"  # the .tflite's one input
# MediaPipe's RegexTokenizer can only split: it reproduces Keras' ids for this standardisation alone
REGEX_STANDARDIZE = "lower_and_strip_punctuation"


class WordsTokenizer(TextTokenizer):
    name = "words"
    unit = "words"
    # the RegexTokenizer list of every spelling, dlpipe's own copy and the in-graph lookup (measured: 3.23 MB
    # for a GRU of 2.09 M parameters and 16,000 words)
    tflite_bytes_per_entry = 70

    def runtime_vocabulary(self, prep: "TextPreprocessing") -> str:
        return VOCABULARY_FILE

    def side_files(self, model: Any, prep: "TextPreprocessing") -> dict[str, Path]:
        """The TextVectorization layer's tokens in id order, written to a temporary vocabulary.txt."""
        import atexit
        import shutil
        import tempfile

        from dlpipe import atomic

        try:
            tokens = [str(token) for token in model.get_layer(LAYER_NAME).get_vocabulary()]
        except ValueError:
            return {}  # not a dlpipe text classifier: nothing to ship
        folder = Path(tempfile.mkdtemp(prefix="dlpipe-vocabulary-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # read when the artifacts are written; gone at exit
        path = folder / VOCABULARY_FILE
        atomic.write_text(path, "".join(f"{token}\n" for token in tokens))
        return {VOCABULARY_FILE: path}

    def encoder(self, prep: "TextPreprocessing", vocabulary: Sequence[str] | str | Path) -> Encoder:
        """{"token_ids"}: the ids of a TextVectorization layer with `vocabulary` (the exported vocabulary.txt, or
        the tokens in id order) and the training settings, in plain Python (`word_ids.WordIds`: the layer's steps,
        without importing TensorFlow)."""
        from dlpipe.data.text import read_vocabulary
        from dlpipe.models.text_tokenizers.word_ids import WordIds

        tokens = read_vocabulary(vocabulary) if isinstance(vocabulary, (str, Path)) else [str(t) for t in vocabulary]
        # get_vocabulary() starts with the padding "" and the OOV "[UNK]"; the layer adds both itself
        if tokens[:2] != ["", "[UNK]"]:
            raise DataError("<vocabulary>", 'a TextVectorization vocabulary starts with "" and "[UNK]" (ids 0 and 1); '
                            f"pass the {VOCABULARY_FILE} exported with the model")
        ids = WordIds(tokens, prep.standardize, prep.sequence_length)

        def encode(texts: Sequence[str]) -> dict[str, np.ndarray]:
            if isinstance(texts, str):
                raise TypeError("encode takes a list of texts, not one string")
            return {TOKEN_IDS: ids(list(texts))}

        return encode

    def describe(self, prep: "TextPreprocessing") -> str:
        return prep.standardize or "no normalisation"

    def training_tokens(self, texts: list[str], prep: "TextPreprocessing", out_dir: Path,
                        embedding_dim: int | None) -> TrainingTokens:
        """A TextVectorization layer adapted on the training texts; with MiniLM rows, its vocabulary is the
        training words plus MiniLM's whole words and each word starts as the mean of its pieces."""
        from dlpipe.models.text_classifiers import make_vectorizer, training_words

        if embedding_dim is None:
            return TrainingTokens(make_vectorizer(texts, prep.max_tokens, prep.sequence_length, prep.standardize),
                                  None, prep)
        from dlpipe.models.pretrained_embeddings import minilm_embedding_matrix, minilm_vocabulary, minilm_wordpiece_tokens

        words = minilm_vocabulary(training_words(texts, prep.max_tokens, prep.standardize), minilm_wordpiece_tokens(),
                                  prep.max_tokens, prep.lowercase, prep.strip_punctuation)
        vectorizer = make_vectorizer(texts, prep.max_tokens, prep.sequence_length, prep.standardize, vocabulary=words)
        vocabulary = [str(word) for word in vectorizer.get_vocabulary()]
        return TrainingTokens(vectorizer, minilm_embedding_matrix(vocabulary, embedding_dim), prep)

    def keras_feed(self, prep: "TextPreprocessing", side: "SideFiles") -> Callable[[Any], Any]:
        import tensorflow as tf

        return lambda batch: tf.constant(list(batch), tf.string)  # TextVectorization is inside the model

    def add_savedmodel_endpoints(self, archive: Any, model: Any, prep: "TextPreprocessing",
                                 files: Mapping[str, Path], outputs: Callable[[Any], dict[str, Any]],
                                 target: Path) -> None:
        """`serving_default` only: the model already takes strings."""
        import tensorflow as tf

        text_spec = tf.TensorSpec([None], tf.string, name="text")
        archive.add_endpoint("serving_default", lambda text: outputs(model(text, training=False)), [text_spec])

    def tflite_inputs(self, model: Any, prep: "TextPreprocessing") -> TFLiteInputs:
        """The model after its TextVectorization layer, rebuilt on an int32 `token_ids` input."""
        import keras

        try:
            layer = model.get_layer(LAYER_NAME)
        except ValueError:
            raise DlpipeError(f"export: text model '{model.name}' has no '{LAYER_NAME}' layer; "
                              "only dlpipe text classifiers export to TFLite") from None
        settings = layer.get_config()
        if (settings.get("output_sequence_length"), settings.get("standardize")) != (prep.sequence_length, prep.standardize):
            # `encoder` rebuilds the layer from `prep`: it must give the model's own ids
            raise DlpipeError(f"export: the model's {LAYER_NAME} layer (sequence length "
                              f"{settings.get('output_sequence_length')}, standardize {settings.get('standardize')!r}) "
                              f"disagrees with preprocessing.json (sequence_length={prep.sequence_length}, "
                              f"standardize {prep.standardize!r})")
        ids = keras.Input((prep.sequence_length,), dtype="int32", name=TOKEN_IDS)
        return TFLiteInputs(_after(model, layer), ids, {TOKEN_IDS: TOKEN_IDS})

    def tflite_metadata(self, prep: "TextPreprocessing", files: Mapping[str, Path], calibration: Sequence[Any],
                        classes: int, target: Path) -> tuple["StandardMetadata | None", str]:
        """A RegexTokenizer process unit whose vocabulary lists every spelling Keras maps to each id, including
        the training texts' (`calibration`); other standardisations have no MediaPipe equivalent."""
        from dlpipe.data.text import read_vocabulary
        from dlpipe.models import tflite_metadata

        if prep.standardize != REGEX_STANDARDIZE or VOCABULARY_FILE not in files:
            warnings.warn(f"export: {target.name.removeprefix('.partial-')}: standardize={prep.standardize!r} has no "
                          "MediaPipe RegexTokenizer equivalent; the file runs in dlpipe (and LiteRT with dlpipe's ids) "
                          "but not in MediaPipe's TextClassifier", stacklevel=3)
            return None, ""
        texts = [str(text) for text in calibration]
        vocab = tflite_metadata.text_vectorization_vocabulary(read_vocabulary(files[VOCABULARY_FILE]), texts)
        return (functools.partial(tflite_metadata.regex_text_classifier_metadata, vocab=vocab),
                f"Classifies text into {classes} classes. Input: {prep.sequence_length} TextVectorization "
                "token ids (lower-cased, punctuation stripped, split on whitespace). MediaPipe's RegexTokenizer "
                "reproduces them with the packed vocab.txt, which lists each token's spellings (capitalised, upper "
                f"case, contractions, and every spelling in the {len(texts)} training texts); a word spelt otherwise "
                "(e.g. \"gOOd\", or \"e-mail\" unseen) becomes <UNKNOWN> where Keras would find it: dlpipe's "
                "runtime, which tokenises with Keras, is exact.")


def _after(model: Any, layer: Any) -> Any:
    """The part of `model` after `layer`, as a model taking its int64 ids.

    A vectorizer shared by several models has one output per call; the one connected to this model's output is
    the one to cut at.
    """
    import keras

    for node in layer._inbound_nodes:
        try:
            return keras.Model(node.outputs[0], model.output)
        except ValueError:
            continue
    raise DlpipeError(f"export: cannot cut model '{model.name}' after its '{LAYER_NAME}' layer")
