"""Tiny offline data and presets shared by the training and CLI tests."""

import csv
import json
import os

from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor

SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our team"]
VERBS = ["likes", "hates", "sees", "finds"]
OBJECTS = ["the movie", "a red ball", "green apples", "the old house"]
LABEL_WORDS = ["positive", "negative"]


def make_rows(n=24, offset=0):
    """Deterministic sentiment-like rows: `likes` is positive."""
    rows = []
    for i in range(offset, offset + n):
        verb = VERBS[i % len(VERBS)]
        rows.append({
            "subject": SUBJECTS[i % len(SUBJECTS)],
            "sentence": f"{verb} {OBJECTS[(i // 3) % len(OBJECTS)]}",
            "label": "positive" if verb in ("likes", "finds") else "negative",
        })
    return rows


def write_csv(path, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]),
                                delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return str(path)


def make_tiny_preset(directory, tied=True, dropout=0.0):
    """A KerasHub preset directory (backbone + tokenizer) of a tiny T5."""
    directory = str(directory)
    if os.path.exists(os.path.join(directory, "config.json")):
        return directory
    backbone = make_tiny_backbone(tied=tied, dropout=dropout)
    preprocessor = make_tiny_preprocessor(16, 4)
    backbone.save_to_preset(directory)
    preprocessor.save_to_preset(directory)
    return directory


TEMPLATE = "subject: {subject} sentence: {sentence}"


def file_task(train_file, validation_file=None):
    """The sentiment-like task over CSV/JSONL files of `make_rows`."""
    from keras_prompt.data import resolve_task

    return resolve_task(
        train_file=train_file,
        validation_file=validation_file,
        template=TEMPLATE,
        label_column="label",
        labels="positive,negative",
    )
