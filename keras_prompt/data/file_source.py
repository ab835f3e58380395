"""Read CSV, TSV and JSONL files with a label column."""

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


def read_rows(path, file_format):
    """The header and `(line_number, row dict)` of every data row of a
    CSV/TSV/JSONL file (`file_format` from `infer_file_format`)."""
    if file_format in ("csv", "tsv"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(
                f, delimiter="\t" if file_format == "tsv" else ","
            )
            header = reader.fieldnames or []
            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
        return header, rows
    rows = []
    header = None
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"Line {line_number} of '{path}' is not valid JSON ({e}); "
                    "JSONL files need one JSON object per line."
                ) from e
            if not isinstance(row, dict):
                raise DataError(
                    f"Line {line_number} of '{path}' is a JSON "
                    f"{type(row).__name__}, not an object with named fields."
                )
            if header is None:
                header = list(row.keys())
            rows.append((line_number, row))
    return header or [], rows


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
                if column not in row or (
                    file_format != "jsonl" and row[column] is None
                ):
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
