import json

import numpy as np
import pytest

from keras_prompt.data import DataError
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
