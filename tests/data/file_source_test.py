import json

import numpy as np
import pytest

from keras_prompt.data import DataError
from keras_prompt.data import infer_file_format
from keras_prompt.data import read_rows
from keras_prompt.data import resolve_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import write_csv
from tests.training.fixtures import write_jsonl

TEMPLATE = "subject: {subject} sentence: {sentence}"


def _task(**files):
    return resolve_task(template=TEMPLATE, label_column="label",
                        labels="positive,negative", **files)


def _collect(ds):
    return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_file_formats_load_the_same_examples(tmp_path, fmt):
    rows = make_rows(5)
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    else:
        write_csv(path, rows, delimiter="\t" if fmt == "tsv" else ",")
    examples = _collect(_task(train_file=str(path)).load("train"))
    assert len(examples) == 5
    first = examples[0]
    assert first["inputs"].decode() == (
        f"subject: {rows[0]['subject']} sentence: {rows[0]['sentence']}")
    assert first["targets"].decode() == rows[0]["label"]
    assert [e["label"] for e in examples] == [
        ["positive", "negative"].index(r["label"]) for r in rows]


def test_label_index_and_case_insensitive_words(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"subject": "a", "sentence": "b", "label": 1},
        {"subject": "a", "sentence": "b", "label": "POSITIVE"}])
    labels = [e["label"] for e in _collect(_task(train_file=path).load("train"))]
    assert labels == [1, 0]


def test_missing_column_names_column_and_file(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "subject"} for r in make_rows(3)]
    path = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError) as e:
        _task(train_file=path).load("train")
    assert "'subject'" in str(e.value) and "train.csv" in str(e.value)
    # JSONL: a row missing the label column is named by its line.
    rows = make_rows(3)
    del rows[2]["label"]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"Column 'label' is missing from line 3"
                       r" of '.*train.jsonl'"):
        _task(train_file=path).load("train")


def test_unknown_label_names_the_row(tmp_path):
    rows = make_rows(4)
    rows[2]["label"] = "neutral"
    path = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(DataError) as e:
        _task(train_file=path).load("train")
    message = str(e.value)
    assert "Line 4" in message and "'neutral'" in message  # header is line 1
    assert "['positive', 'negative']" in message and "train.csv" in message


def test_empty_split_and_missing_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("subject,sentence,label\n")
    with pytest.raises(DataError, match="train split is empty"):
        _task(train_file=str(path)).load("train")
    with pytest.raises(DataError, match="does not exist"):
        _task(train_file=str(tmp_path / "nope.csv")).load("train")
    with pytest.raises(DataError, match="validation-file"):
        _task(train_file=str(path)).load("validation")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "a"}\nnot json\n')
    with pytest.raises(DataError, match="Line 2 .* not valid JSON"):
        _task(train_file=str(bad)).load("train")


def test_task_argument_errors():
    with pytest.raises(DataError, match="No task given"):
        resolve_task()
    with pytest.raises(DataError, match="template"):
        resolve_task(train_file="x.csv", labels="a,b")
    with pytest.raises(DataError, match="label words"):
        resolve_task(train_file="x.csv", template=TEMPLATE)
    with pytest.raises(DataError, match="at least two label words"):
        resolve_task(train_file="x.csv", template=TEMPLATE, labels="a")


HEADER = "subject,sentence,label\n"


def _load_error(path):
    with pytest.raises(DataError) as e:
        _task(train_file=str(path)).load("train")
    return str(e.value)


def test_csv_row_with_an_extra_field_names_file_line_and_counts(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "the cat,likes fish,positive\n"
                    "a dog,hates rain, a lot,negative\n")
    assert _load_error(path) == (
        f"Line 3 of '{path}' has 4 fields but the header (line 1) has 3 "
        "columns ['subject', 'sentence', 'label']; the extra ['negative'] "
        'would be lost. Quote fields that contain a comma (e.g. "a, b"), or '
        "remove the extra fields."
    )
    # Quoted, the comma is part of the field.
    path.write_text(HEADER + 'a dog,"hates rain, a lot",negative\n')
    examples = _collect(_task(train_file=str(path)).load("train"))
    assert examples[0]["inputs"].decode() == (
        "subject: a dog sentence: hates rain, a lot")


def test_tsv_row_with_an_extra_field(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("subject\tsentence\tlabel\n"
                    "the cat\tlikes fish\tpositive\tsure\n")
    message = _load_error(path)
    assert message.startswith(
        f"Line 2 of '{path}' has 4 fields but the header (line 1) has 3 "
        "columns ['subject', 'sentence', 'label']; the extra ['sure']")
    assert "Quote fields that contain a tab" in message


def test_csv_row_with_too_few_fields_names_file_line_and_counts(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "the cat,likes fish,positive\n"
                    '"a dog\nand a cat",hate rain\n')
    # The record starts on line 3 (its quoted field spans lines 3 and 4).
    assert _load_error(path) == (
        f"Line 3 of '{path}' has 2 fields but the header (line 1) has 3 "
        "columns ['subject', 'sentence', 'label']; it has no value for "
        "['label']. Add the missing fields (an empty field still needs its "
        "comma), or fix the row."
    )
    path.write_text(HEADER + "the cat\n")
    assert _load_error(path).startswith(
        f"Line 2 of '{path}' has 1 field but the header")


def test_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbf" + (HEADER + "the cat,likes fish,positive\n").encode())
    jsonl_path = tmp_path / "train.jsonl"
    jsonl_path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"subject": "the cat", "sentence": "likes fish",
         "label": "positive"}).encode() + b"\n")
    for path in (csv_path, jsonl_path):
        header, _ = read_rows(str(path), infer_file_format(str(path)))
        assert header == ["subject", "sentence", "label"]
        examples = _collect(_task(train_file=str(path)).load("train"))
        assert examples[0]["inputs"].decode() == (
            "subject: the cat sentence: likes fish")


@pytest.mark.parametrize(
    "name, lines, column",
    [
        # "the café,likes caf" precedes the Latin-1 é: 18 characters (the
        # UTF-8 é is 2 bytes), so the bad byte is in column 19.
        ("train.csv", [HEADER.encode(), b"the cat,likes fish,positive\n",
                       b"the caf\xc3\xa9,likes caf\xe9,positive\n"], 19),
        ("train.jsonl", [b'{"subject": "a", "sentence": "b", "label": 0}\n',
                         b"\n",
                         b'{"subject": "caf\xe9", "sentence": "b", '
                         b'"label": 0}\n'], 17),
    ],
)
def test_non_utf8_byte_names_file_line_column_and_byte(
        tmp_path, name, lines, column):
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    assert _load_error(path) == (
        f"Line 3 of '{path}' is not UTF-8 at column {column}: byte 0xe9 "
        "(invalid continuation byte). Re-encode the file as UTF-8 (for "
        "example with `iconv -f latin1 -t utf-8`, or a spreadsheet's "
        '"CSV UTF-8" format).'
    )


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_csv_says_it_has_no_header_row(tmp_path, content):
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    assert _load_error(path) == (
        f"'{path}' is empty: it has no header row. The first line of a CSV "
        "file names its columns, e.g. premise,hypothesis,label."
    )


def test_repeated_header_column_is_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("subject,sentence,sentence,label\na,b,c,positive\n")
    assert _load_error(path) == (
        f"The header (line 1) of '{path}' names ['sentence'] more than once "
        "(['subject', 'sentence', 'sentence', 'label']); rename the repeats, "
        "or each row keeps only the last value of a repeated column."
    )


def test_bad_json_line_names_file_line_column_and_text(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"subject": "a", "sentence": "b", "label": "positive"}\n'
                    '\n'
                    '{"subject": "a", "sentence": "b", "label": positive}\n')
    assert _load_error(path) == (
        f"Line 3 of '{path}' is not valid JSON at column 44 (Expecting "
        "value): '{\"subject\": \"a\", \"sentence\": \"b\", \"label\": "
        "positive}'. "
        "JSONL files need one JSON object per line."
    )
    path.write_text('["a", "b", "positive"]\n')
    assert _load_error(path).startswith(
        f"Line 1 of '{path}' is a JSON list, not an object with named fields")
