"""A text-to-text task: source + formatter + label words + metric."""

import logging

from keras_prompt.data.data_error import DataError
from keras_prompt.data.metrics import METRICS
from keras_prompt.data.metrics import compute_metrics

logger = logging.getLogger(__name__)


class Task:
    """A classification task cast as text-to-text.

    A task reads raw examples from a `source` (a `TFDSSource` or a
    `FileSource`), turns each into an input string with `formatter` and into
    a target string with `label_words[label]`, and scores predictions with
    its metrics.

    Args:
        name: the task name, e.g. `"rte"`.
        source: an object with `load(split, data_dir=None)` returning a
            `tf.data.Dataset` of feature dicts with an int `label`.
        formatter: a callable mapping a feature dict (of tensors) to the input
            string tensor, e.g. `GlueFormatter` or `TemplateFormatter`.
        label_words: the verbalized labels; `label_words[i]` is the target
            text of class `i`.
        metrics: metric names; the first one is the task's main metric (used
            for early stopping and keeping the best prompt). Defaults to
            `("accuracy",)`.
        splits: dict from the generic split names `"train"`, `"validation"`
            and `"test"` to the source's split names.
        description: a one-line description for `--help` listings.

    Example:

    ```python
    task = Task(
        "nli",
        FileSource({"train": "train.csv", "validation": "dev.csv"},
                   ["premise", "hypothesis"], "label", ["yes", "no"]),
        TemplateFormatter("premise: {premise} hypothesis: {hypothesis}"),
        label_words=["yes", "no"],
    )
    ds = task.load("train")  # {"inputs": ..., "targets": ..., "label": ...}
    ```
    """

    def __init__(self, name, source, formatter, label_words,
                 metrics=("accuracy",), splits=None, description=""):
        label_words = [str(w) for w in label_words]
        if len(label_words) < 2:
            raise DataError(
                f"Task '{name}' needs at least two label words, got "
                f"{label_words}. Pass them as labels=['a', 'b', ...]."
            )
        if any(not w.strip() for w in label_words):
            raise DataError(f"Task '{name}' has an empty label word: {label_words}.")
        if len(set(label_words)) != len(label_words):
            raise DataError(
                f"Task '{name}' has duplicate label words {label_words}; each "
                "class needs its own word."
            )
        metrics = tuple(metrics)
        for metric in metrics:
            if metric not in METRICS:
                raise DataError(
                    f"Unknown metric '{metric}' for task '{name}'; use one of "
                    f"{', '.join(METRICS)}."
                )
        if "f1" in metrics and len(label_words) != 2:
            raise DataError(
                f"Task '{name}': binary F1 needs exactly two label words."
            )
        self.name = name
        self.source = source
        self.formatter = formatter
        self.label_words = label_words
        self.metrics = metrics
        self.splits = dict(
            splits or {"train": "train", "validation": "validation",
                       "test": "test"}
        )
        self.description = description

    @property
    def main_metric(self):
        """The metric used for early stopping and the best prompt."""
        return self.metrics[0]

    def source_split(self, split):
        return self.splits.get(split, split)

    def num_examples(self, split, data_dir=None):
        return self.source.num_examples(self.source_split(split), data_dir)

    def load(self, split, data_dir=None):
        """Return a `tf.data.Dataset` of `{"inputs", "targets", "label"}`.

        Args:
            split: `"train"`, `"validation"`, `"test"` or a source split name.
            data_dir: the TFDS data directory (ignored by file sources).
        """
        import tensorflow as tf

        raw = self.source.load(self.source_split(split), data_dir=data_dir)
        words = tf.constant(self.label_words)
        num_classes = len(self.label_words)
        formatter = self.formatter

        def to_text(example):
            label = tf.cast(example["label"], tf.int32)
            valid = tf.logical_and(label >= 0, label < num_classes)
            target = tf.where(
                valid,
                tf.gather(words, tf.clip_by_value(label, 0, num_classes - 1)),
                tf.constant("<unk>"),
            )
            return {
                "inputs": formatter(example),
                "targets": target,
                "label": tf.where(valid, label, -1),
            }

        return raw.map(to_text, num_parallel_calls=tf.data.AUTOTUNE)

    def compute_metrics(self, predictions, labels):
        """Score predicted label indices (`-1` = no label word) in percent."""
        return compute_metrics(
            self.metrics, predictions, labels, len(self.label_words)
        )

    def __repr__(self):
        return (
            f"Task(name={self.name!r}, labels={self.label_words}, "
            f"metrics={list(self.metrics)})"
        )
