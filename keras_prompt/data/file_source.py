"""Read CSV, TSV and JSONL files with a label column."""

import codecs
import csv
import json
import os

from keras_prompt.data.data_error import DataError

FILE_FORMATS = ("csv", "tsv", "jsonl")


def infer_file_format(path):
    """`"csv"`, `"tsv"` or `"jsonl"` from the file extension."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext in ("json", "jsonl", "ndjson"):
        return "jsonl"
    if ext in ("csv", "tsv"):
        return ext
    raise DataError(
        f"Cannot tell the format of '{path}' from its extension; name it "
        "*.csv, *.tsv or *.jsonl (or pass file_format)."
    )


def _decoded_lines(path):
    """The lines of a UTF-8 text file, line endings kept.

    A leading byte-order mark is dropped (`utf-8-sig` semantics: spreadsheet
    programs write one, and it would otherwise join the first column's
    name). Decoding line by line keeps the line number of a byte that is not
    UTF-8, and is exact: a newline byte never occurs inside a multi-byte
    UTF-8 character.
    """
    with open(path, "rb") as f:
        for line_number, raw_line in enumerate(f, start=1):
            if line_number == 1 and raw_line.startswith(codecs.BOM_UTF8):
                raw_line = raw_line[len(codecs.BOM_UTF8):]
            try:
                yield raw_line.decode("utf-8")
            except UnicodeDecodeError as e:
                column = len(raw_line[: e.start].decode("utf-8")) + 1
                raise DataError(
                    f"Line {line_number} of '{path}' is not UTF-8 at column "
                    f"{column}: byte 0x{raw_line[e.start]:02x} ({e.reason}). "
                    "Re-encode the file as UTF-8 (for example with `iconv -f "
                    "latin1 -t utf-8`, or a spreadsheet's \"CSV UTF-8\" "
                    "format)."
                ) from e


def _read_delimited_rows(path, file_format):
    """The header and `(line_number, row dict)` of a CSV or TSV file, every
    row checked to have exactly one field per header column."""
    # How errors describe the separator, a quoted field and a header row.
    if file_format == "tsv":
        delimiter, separator = "\t", "tab"
        quote_hint = "contain a tab"
        header_example = "premise<TAB>hypothesis<TAB>label"
    else:
        delimiter, separator = ",", "comma"
        quote_hint = 'contain a comma (e.g. "a, b")'
        header_example = "premise,hypothesis,label"
    reader = csv.reader(_decoded_lines(path), delimiter=delimiter)
    header = None
    header_line = None
    rows = []
    # A quoted field may span lines: a record starts on the line after the
    # previous record ended, which is the line to point the user at.
    next_record_line = 1
    try:
        for fields in reader:
            line = next_record_line
            next_record_line = reader.line_num + 1
            if not fields:
                continue  # A blank line, skipped as `csv.DictReader` does.
            if header is None:
                header, header_line = fields, line
                repeated = [c for i, c in enumerate(header) if c in header[:i]]
                if repeated:
                    raise DataError(
                        f"The header (line {line}) of '{path}' names "
                        f"{repeated} more than once ({header}); rename the "
                        "repeats, or each row keeps only the last value of "
                        "a repeated column."
                    )
                continue
            if len(fields) != len(header):
                counts = (
                    f"Line {line} of '{path}' has {len(fields)} "
                    f"field{'' if len(fields) == 1 else 's'} but the header "
                    f"(line {header_line}) has {len(header)} columns {header}"
                )
                if len(fields) > len(header):
                    raise DataError(
                        f"{counts}; the extra {fields[len(header):]} would be "
                        f"lost. Quote fields that {quote_hint}, or remove the "
                        "extra fields."
                    )
                raise DataError(
                    f"{counts}; it has no value for {header[len(fields):]}. "
                    "Add the missing fields (an empty field still needs its "
                    f"{separator}), or fix the row."
                )
            rows.append((line, dict(zip(header, fields))))
    except csv.Error as e:
        raise DataError(
            f"Line {reader.line_num} of '{path}' is not valid "
            f"{file_format.upper()} ({e})."
        ) from e
    if header is None:
        raise DataError(
            f"'{path}' is empty: it has no header row. The first line of a "
            f"{file_format.upper()} file names its columns, e.g. "
            f"{header_example}."
        )
    return header, rows


def _read_json_lines(path):
    """The header (the first object's keys) and `(line_number, row dict)`
    of a JSONL file; blank lines are skipped."""
    rows = []
    header = None
    for line_number, line in enumerate(_decoded_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"Line {line_number} of '{path}' is not valid JSON at column "
                f"{e.colno} ({e.msg}): {line.strip()[:80]!r}. JSONL files "
                "need one JSON object per line."
            ) from e
        if not isinstance(row, dict):
            raise DataError(
                f"Line {line_number} of '{path}' is a JSON "
                f"{type(row).__name__}, not an object with named fields; "
                "write each line as an object such as "
                '{"premise": "...", "label": "yes"}.'
            )
        if header is None:
            header = list(row.keys())
        rows.append((line_number, row))
    return header or [], rows


def read_rows(path, file_format):
    """The header and `(line_number, row dict)` of every data row of a
    CSV/TSV/JSONL file (`file_format` from `infer_file_format`).

    The file must be UTF-8 (a leading byte-order mark is ignored). A CSV/TSV
    file needs a header row, and every data row exactly one field per header
    column. Errors name the file and the line.
    """
    if file_format in ("csv", "tsv"):
        return _read_delimited_rows(path, file_format)
    return _read_json_lines(path)


def _to_text(value):
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


class FileSource:
    """Examples from CSV, TSV or JSONL files, one file per split.

    Every row must have the columns the formatter uses and a label column
    whose value is one of the label words (or a 0-based label index). Rows are
    validated when a split is loaded; errors name the file, the line and the
    column.

    Args:
        files: dict split name -> path, e.g. `{"train": "train.csv"}`.
        columns: the text columns the formatter needs.
        label_column: the column holding the label.
        label_words: the label words; the label's position in this list is the
            class index.
        file_format: `"csv"`, `"tsv"` or `"jsonl"`; inferred from the
            extension by default.

    Example:

    ```python
    source = FileSource({"train": "train.jsonl"}, ["premise", "hypothesis"],
                        label_column="label", label_words=["yes", "no"])
    ds = source.load("train")  # {"premise", "hypothesis", "label"}
    ```
    """

    def __init__(self, files, columns, label_column, label_words,
                 file_format=None):
        self.files = dict(files)
        self.columns = list(columns)
        self.label_column = label_column
        self.label_words = [str(w) for w in label_words]
        self.file_format = file_format
        if file_format is not None and file_format not in FILE_FORMATS:
            raise DataError(
                f"Unknown file format '{file_format}'; use one of "
                f"{', '.join(FILE_FORMATS)}."
            )
        self._cache = {}

    def describe(self, split):
        return f"file '{self.files.get(split)}' ({split} split)"

    def _path(self, split):
        if split not in self.files or not self.files[split]:
            raise DataError(
                f"No file was given for the '{split}' split; pass "
                f"--{split}-file (or files={{'{split}': path}})."
            )
        path = os.path.expanduser(self.files[split])
        if not os.path.isfile(path):
            raise DataError(f"The {split} file '{path}' does not exist.")
        return path

    def label_index(self, value, path, line):
        text = _to_text(value).strip()
        if text in self.label_words:
            return self.label_words.index(text)
        lowered = [w.lower() for w in self.label_words]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(self.label_words):
            return int(text)
        raise DataError(
            f"Line {line} of '{path}' has label {text!r} in column "
            f"'{self.label_column}', which is not one of the label words "
            f"{self.label_words} (nor an index 0..{len(self.label_words) - 1}). "
            "Fix the row or add the word to labels."
        )

    def read(self, split):
        """Read and validate a split; returns dict column -> list, `label`."""
        if split in self._cache:
            return self._cache[split]
        path = self._path(split)
        file_format = self.file_format or infer_file_format(path)
        header, rows = read_rows(path, file_format)
        needed = self.columns + [self.label_column]
        if file_format != "jsonl":
            for column in needed:
                if column not in header:
                    raise DataError(
                        f"Column '{column}' is missing from '{path}' (its "
                        f"columns are {header}). Fix the template "
                        "or label_column, or add the column to the file."
                    )
        if not rows:
            raise DataError(
                f"The {split} split is empty: '{path}' has no data rows."
            )
        data = {c: [] for c in self.columns}
        labels = []
        for line, row in rows:
            for column in needed:
                if column not in row:
                    raise DataError(
                        f"Column '{column}' is missing from line {line} of "
                        f"'{path}' (the row has {sorted(row)}). Fix the row, "
                        "the template or label_column."
                    )
            for column in self.columns:
                data[column].append(_to_text(row[column]))
            labels.append(self.label_index(row[self.label_column], path, line))
        data["label"] = labels
        self._cache[split] = data
        return data

    def num_examples(self, split, data_dir=None):
        return len(self.read(split)["label"])

    def load(self, split, data_dir=None):
        """Return a `tf.data.Dataset` of the split's columns and int label."""
        import tensorflow as tf

        data = self.read(split)
        tensors = {c: tf.constant(data[c], tf.string) for c in self.columns}
        tensors["label"] = tf.constant(data["label"], tf.int32)
        return tf.data.Dataset.from_tensor_slices(tensors)

    def get_config(self):
        return {
            "files": self.files,
            "columns": self.columns,
            "label_column": self.label_column,
            "label_words": self.label_words,
            "file_format": self.file_format,
        }
