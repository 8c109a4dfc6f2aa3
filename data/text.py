"""Read labelled sentences from TSV/CSV files without ever crashing on a bad line.

The encoding comes from the byte-order mark (UTF-8, UTF-16, UTF-32), else UTF-8
(`dlpipe.data.text_encoding`). A stray undecodable line, an empty line, a row
without a label or with one that cannot be a class name (control characters,
U+FFFD, a path separator, over 128 characters: `dlpipe.data.class_names`) is skipped,
counted and reported by file and line number; a file where such lines are more
than BAD_LINE_LIMIT of the lines, or with no usable row, is refused naming the
first bad file:line: it was decoded wrongly, or the label column is not the label.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dlpipe.data.class_names import name_problem
from dlpipe.data.text_encoding import SAVE_AS, decoded_lines
from dlpipe.errors import DataError

# a file where more than this fraction of the lines (and more than one) cannot be decoded or carry a garbled
# label is refused: read that way, it would train on garbage
BAD_LINE_LIMIT = 0.1


@dataclass
class TextTable:
    """Usable (text, label string) rows of one or more files, and what was skipped."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line number, reason)
    empty_lines: int = 0

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, _, reason in self.skipped:
            counts[reason] = counts.get(reason, 0) + 1
        return counts


def detect_format(path: str | Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    return "csv" if Path(path).suffix.lower() == ".csv" else "tsv"


def read_labelled_text(
    paths: Sequence[str | Path],
    fmt: str = "auto",
    header: bool = False,
    text_column: int | str = 0,
    label_column: int | str = 1,
) -> TextTable:
    """Read every file into one table; columns are indices, or names when `header` is true."""
    table = TextTable()
    for path in paths:
        _read_one(Path(path), detect_format(path, fmt), header, text_column, label_column, table)
    if not table.texts:
        where = ", ".join(str(p) for p in paths)
        raise DataError(where, f"no usable labelled rows ({len(table.skipped)} skipped, {table.empty_lines} empty lines); "
                        f"expected text and label columns ({'CSV' if fmt == 'csv' else 'tab-separated'})")
    return table


def _read_one(path: Path, fmt: str, header: bool, text_column: int | str, label_column: int | str, table: TextTable) -> None:
    if not path.is_file():
        raise DataError(str(path), "file does not exist; pass --data FILE with one text and one label per row")
    lines = list(decoded_lines(path))
    delimiter = "," if fmt == "csv" else "\t"
    quoting = csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE
    text_index, label_index = text_column, label_column
    if header:
        if not lines or lines[0][1] is None:
            raise DataError(f"{path}:1", "empty file" if not lines else f"header: {lines[0][2]}; {SAVE_AS}")
        names = next(csv.reader([lines[0][1]], delimiter=delimiter))
        text_index = _column_index(path, names, text_column, "text_column")
        label_index = _column_index(path, names, label_column, "label_column")
        lines = lines[1:]
    if not isinstance(text_index, int) or not isinstance(label_index, int):
        raise DataError(str(path), "column names need header: true; otherwise give column numbers")
    bad: list[tuple[int, str]] = []
    for number, line, error in lines:
        if line is None or not line.strip():
            if line is None:
                bad.append((number, str(error)))
                table.skipped.append((str(path), number, str(error)))
            else:
                table.empty_lines += 1
            continue
        row, problem = csv_fields(line, delimiter, quoting)
        if row is None:
            bad.append((number, problem))
            table.skipped.append((str(path), number, problem))
            continue
        if len(row) <= max(text_index, label_index) or not row[label_index].strip():
            table.skipped.append((str(path), number, "missing label"))
            continue
        text, label = row[text_index].strip(), row[label_index].strip()
        problem = name_problem(label)
        if problem:
            reason = f"label {label[:40]!r} {problem}"
            bad.append((number, reason))
            table.skipped.append((str(path), number, reason))
            continue
        if not text:
            table.skipped.append((str(path), number, "empty text"))
            continue
        table.texts.append(text)
        table.labels.append(label)
    _refuse_if_mostly_bad(path, bad, sum(1 for _, line, _ in lines if line is None or line.strip()))


CSV_REASONS = ("a field over", "not valid CSV")  # how csv_fields' reasons start: each carries its own remedy


def csv_fields(line: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL) -> tuple[list[str] | None, str]:
    """The fields of one CSV/TSV line, or (None, the reason) when the csv module refuses it (a field over
    `csv.field_size_limit`, 128 K characters: a 50 MB line used to stop a run with `internal error: Error`)."""
    try:
        return next(csv.reader(io.StringIO(line), delimiter=delimiter, quoting=quoting), []), ""
    except csv.Error as error:
        if "field limit" in str(error):
            return None, (f"a field over {csv.field_size_limit():,} characters (the csv module's limit): one example "
                          "is a sentence or a paragraph; split or shorten it, or check the file's quotes")
        return None, f"not valid CSV ({error}); quote a field holding the delimiter and close every quote"


def _refuse_if_mostly_bad(path: Path, bad: list[tuple[int, str]], lines: int) -> None:
    """A file whose bad lines are more than BAD_LINE_LIMIT of its non-empty lines (and more than one), or all
    of them, was read wrongly: a one-line error naming the first bad line instead of training on the rest."""
    if bad and (len(bad) == lines or (len(bad) > 1 and len(bad) > BAD_LINE_LIMIT * lines)):
        number, reason = bad[0]
        fix = ("is load.label_column the label? A label is one line of text without '/', up to 128 characters"
               if reason.startswith("label ") else "" if reason.startswith(CSV_REASONS) else SAVE_AS)
        raise DataError(f"{path}:{number}", f"{reason}; {len(bad)} of {lines} lines are like this" +
                        (f": {fix}" if fix else ""))


def _column_index(path: Path, names: list[str], column: int | str, option: str) -> int:
    if isinstance(column, int):
        return column
    if column not in names:
        raise DataError(str(path), f"no column named '{column}' (load.{option}); the header has: {', '.join(names)}")
    return names.index(column)


# tokenizer names older artifacts' preprocessing.json used -> today's (read in `TextPreprocessing.from_dict` only)
LEGACY_TOKENIZER_NAMES = {"vectorize": "words"}


@dataclass(frozen=True)
class TextPreprocessing:
    """How strings become token ids: the tokenizer (`dlpipe.models.text_tokenizers`) and its settings."""

    max_tokens: int = 20000
    sequence_length: int = 64
    lowercase: bool = True
    strip_punctuation: bool = True
    tokenizer: str = "words"  # "words": TextVectorization in the model; "wordpiece": ids fed to the model
    vocab_file: str | None = None  # the WordPiece vocabulary, with tokenizer="wordpiece"

    @property
    def standardize(self) -> str | None:
        """The TextVectorization `standardize` mode for these options."""
        if self.lowercase and self.strip_punctuation:
            return "lower_and_strip_punctuation"
        if self.lowercase:
            return "lower"
        if self.strip_punctuation:
            return "strip_punctuation"
        return None

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> "TextPreprocessing":
        """From a preprocessing.json, ignoring keys that are not ours (such as "kind"); an old artifact's
        tokenizer name ("vectorize") is read as today's ("words")."""
        fields = {key: value for key, value in values.items() if key in cls.__dataclass_fields__}
        if fields.get("tokenizer") in LEGACY_TOKENIZER_NAMES:
            fields["tokenizer"] = LEGACY_TOKENIZER_NAMES[fields["tokenizer"]]
        return cls(**fields)

    def to_dict(self) -> dict[str, object]:
        return {"max_tokens": self.max_tokens, "sequence_length": self.sequence_length,
                "lowercase": self.lowercase, "strip_punctuation": self.strip_punctuation,
                "tokenizer": self.tokenizer, "vocab_file": Path(self.vocab_file).name if self.vocab_file else None}


def text_dataset(texts: Sequence[str], labels: Sequence[int]):
    """Unbatched (string, label) pairs, the text counterpart of `datasets.decoded_images`."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((list(texts), list(labels)))


def encoded_text_dataset(encode: Callable[[Sequence[str]], dict[str, np.ndarray]], texts: Sequence[str],
                         labels: Sequence[int]):
    """Unbatched (model inputs, label) pairs for a model fed token ids; `encode` is the tokenizer's encoder
    (`dlpipe.models.text_tokenizers`), the same function that tokenises for exported TFLite files and for serving."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((encode(list(texts)), list(labels)))


def read_unlabelled_texts(path: str | Path, text_column: int | str = 0) -> list[tuple[str, str | None, str | None]]:
    """(id, text, error) per line of a .txt (one text a line), .tsv/.csv (a column) or .jsonl ("text") file.

    The id is "file:line", so a resumed batch job can tell finished lines apart
    even when texts repeat; a stray unreadable line keeps its id with an error, a file
    mostly undecodable (or UTF-16 without a byte-order mark) is refused naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file does not exist")
    suffix = path.suffix.lower()
    rows: list[tuple[str, str | None, str | None]] = []
    bad: list[tuple[int, str]] = []
    for number, line, error in decoded_lines(path):
        key = f"{path}:{number}"
        if line is None:
            rows.append((key, None, error))
            bad.append((number, str(error)))
            continue
        if not line.strip():
            continue
        if suffix == ".jsonl":
            import json

            try:
                text = json.loads(line).get("text")
            except (ValueError, AttributeError):
                text = None
            rows.append((key, text, None) if isinstance(text, str) else (key, None, 'expected a JSON object with "text"'))
        elif suffix in (".tsv", ".csv"):
            row, problem = csv_fields(line, "," if suffix == ".csv" else "\t")
            index = text_column if isinstance(text_column, int) else 0
            if row is None:
                bad.append((number, problem))
            rows.append((key, None, problem) if row is None else
                        (key, row[index], None) if len(row) > index else (key, None, f"no column {index}"))
        else:
            rows.append((key, line.strip(), None))
    _refuse_if_mostly_bad(path, bad, len(rows))
    return rows


def read_vocabulary(path: str | Path) -> list[str]:
    """Tokens of a vocabulary file in id order, split on "\\n" only (tokens may hold other Unicode line breaks)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "vocabulary file not found; it is exported beside the .tflite model")
    tokens = path.read_bytes().decode("utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [token.removesuffix("\r") for token in tokens]
