"""A text-to-text task: source + formatter + targets + metrics."""

import logging

from keras_prompt.data.data_error import DataError
from keras_prompt.data.metrics import LABEL_METRICS
from keras_prompt.data.metrics import METRICS
from keras_prompt.data.metrics import TEXT_METRICS
from keras_prompt.data.metrics import compute_metrics

logger = logging.getLogger(__name__)

# T5's target for an example without a label.
UNKNOWN_TARGET = "<unk>"


class Task:
    """A task cast as text-to-text.

    A task reads raw examples from a `source` (a `TFDSSource` or a
    `FileSource`), turns each into an input string with `formatter` and
    into a target string, and scores predictions with its metrics. Targets
    come in two kinds:

    - a fixed label set (`label_words`, classification): the target of
      class `i` is `label_words[i]`; a decoded text is mapped back to its
      class index (`-1` when it is no label word) and scored on indices.
    - free-form targets (`targets`, e.g. `RecordTargets`, `WscTargets`):
      the targets object makes each example's target texts and reference
      answers, may make several training examples of one example (ReCoRD:
      one per answer) or none (WSC: wrong referents), and maps a decoded
      text to the task's label (`prediction_label`). Metrics get the
      decoded texts and the references as well as the labels.

    Either kind may group its examples (`group_by`): MultiRC scores the
    answer options of one question together, ReCoRD counts each query once.

    Args:
        name: the task name, e.g. `"rte"`.
        source: an object with `load(split, data_dir=None)` returning a
            `tf.data.Dataset` of feature dicts (with an int `label` for
            label-word tasks).
        formatter: a callable mapping a feature dict (of tensors) to the input
            string tensor, e.g. `GlueFormatter` or `TemplateFormatter`.
        label_words: the verbalized labels; `label_words[i]` is the target
            text of class `i`. `None` for a task with free-form `targets`.
        metrics: metric names (see `keras_prompt.data.metrics.METRICS`); the
            first one is the task's main metric (used for early stopping and
            keeping the best prompt). Defaults to `("accuracy",)`.
        splits: dict from the generic split names `"train"`, `"validation"`
            and `"test"` to the source's split names.
        description: a one-line description for `--help` listings.
        targets: for free-form tasks, the object making each example's
            targets: called as `targets(example, training)` in `tf.data`,
            returning `{"targets": 1-D strings (one output example each),
            "references": 1-D strings, "label": int32}`, with a
            `prediction_label(text, references)` method and a
            `max_target_length` attribute.
        group_by: feature paths whose values identify an example's group,
            e.g. `("idx/paragraph", "idx/question")`; the group id is their
            values joined by `"/"`.

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

    def __init__(self, name, source, formatter, label_words=None,
                 metrics=("accuracy",), splits=None, description="",
                 targets=None, group_by=None):
        if targets is not None and label_words is not None:
            raise DataError(
                f"Task '{name}' got both label_words {list(label_words)} and "
                f"free-form targets {type(targets).__name__}; pass one of "
                "them."
            )
        if targets is None:
            label_words = self._checked_label_words(name, label_words)
        metrics = tuple(metrics)
        for metric in metrics:
            if metric not in METRICS:
                raise DataError(
                    f"Unknown metric '{metric}' for task '{name}'; use one of "
                    f"{', '.join(METRICS)}."
                )
            if metric in TEXT_METRICS and targets is None:
                raise DataError(
                    f"Task '{name}': metric '{metric}' compares predicted "
                    "texts with reference answers, which only tasks with "
                    "free-form targets have; use one of "
                    f"{', '.join(LABEL_METRICS)}."
                )
        if {"f1", "f1a"} & set(metrics) and label_words is not None \
                and len(label_words) != 2:
            raise DataError(
                f"Task '{name}': binary F1 needs exactly two label words."
            )
        self.name = name
        self.source = source
        self.formatter = formatter
        self.label_words = label_words
        self.targets = targets
        self.metrics = metrics
        self.group_by = tuple(group_by) if group_by else None
        self.splits = dict(
            splits or {"train": "train", "validation": "validation",
                       "test": "test"}
        )
        self.description = description

    @staticmethod
    def _checked_label_words(name, label_words):
        if label_words is None:
            raise DataError(
                f"Task '{name}' needs its label words (label_words=['a', "
                "'b', ...]) or, for free-form targets, a targets object "
                "(e.g. targets=RecordTargets())."
            )
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
        return label_words

    @property
    def main_metric(self):
        """The metric used for early stopping and the best prompt."""
        return self.metrics[0]

    @property
    def has_fixed_labels(self):
        """Whether the targets are a fixed set of label words (so rank
        classification and class-label prompt initialization apply)."""
        return self.label_words is not None

    @property
    def extra_keys(self):
        """The keys of `load()`'s examples besides `inputs`, `targets` and
        `label`: `references` for free-form tasks, `group` for grouped
        ones."""
        keys = []
        if self.targets is not None:
            keys.append("references")
        if self.group_by:
            keys.append("group")
        return keys

    def source_split(self, split):
        return self.splits.get(split, split)

    def num_examples(self, split, data_dir=None):
        """The number of source examples of `split` (for ReCoRD training,
        `load` makes more: one per answer)."""
        return self.source.num_examples(self.source_split(split), data_dir)

    def default_target_length(self, tokenizer, prefix=""):
        """A target length in tokens, the end token included: the longest
        label word (tokenized as `prefix + word`, e.g. the continuation a
        decoder-only model generates) plus one (at least 2), or the
        free-form targets' `max_target_length`."""
        if self.targets is not None:
            return int(self.targets.max_target_length)
        import numpy as np

        return max(2, max(len(np.asarray(tokenizer(prefix + w)).reshape(-1))
                          for w in self.label_words) + 1)

    def _group(self, example):
        import tensorflow as tf

        parts = []
        for path in self.group_by:
            value = example
            for key in path.split("/"):
                value = value[key]
            if value.dtype != tf.string:
                value = tf.strings.as_string(value)
            parts.append(value)
        return tf.strings.join(parts, separator="/")

    def load(self, split, data_dir=None, training=None):
        """Return a `tf.data.Dataset` of `{"inputs", "targets", "label"}`,
        plus `extra_keys` (`references`, `group`) where the task has
        them.

        Args:
            split: `"train"`, `"validation"`, `"test"` or a source split name.
            data_dir: the TFDS data directory (ignored by file sources).
            training: make training examples (free-form tasks: ReCoRD gets
                one per answer, WSC only correct referents) rather than one
                evaluation example per source example. Defaults to
                `split == "train"`.
        """
        import tensorflow as tf

        raw = self.source.load(self.source_split(split), data_dir=data_dir)
        if training is None:
            training = split == "train"
        if self.targets is not None:
            return self._load_free_form(raw, bool(training))
        words = tf.constant(self.label_words)
        num_classes = len(self.label_words)
        formatter = self.formatter

        def to_text(example):
            label = tf.cast(example["label"], tf.int32)
            valid = tf.logical_and(label >= 0, label < num_classes)
            target = tf.where(
                valid,
                tf.gather(words, tf.clip_by_value(label, 0, num_classes - 1)),
                tf.constant(UNKNOWN_TARGET),
            )
            out = {
                "inputs": formatter(example),
                "targets": target,
                "label": tf.where(valid, label, -1),
            }
            if self.group_by:
                out["group"] = self._group(example)
            return out

        return raw.map(to_text, num_parallel_calls=tf.data.AUTOTUNE)

    def _load_free_form(self, raw, training):
        import tensorflow as tf

        formatter, targets = self.formatter, self.targets

        def to_examples(example):
            built = targets(example, training)
            copies = tf.size(built["targets"])
            references = tf.reshape(built["references"], [1, -1])
            out = {
                "inputs": tf.fill([copies], formatter(example)),
                "targets": built["targets"],
                "label": tf.fill([copies], tf.cast(built["label"], tf.int32)),
                "references": tf.tile(references, [copies, 1]),
            }
            if self.group_by:
                out["group"] = tf.fill([copies], self._group(example))
            return out

        # Zero, one or several examples per source example (T5 does the same
        # with `unbatch`); the order stays that of the source.
        return raw.map(
            to_examples, num_parallel_calls=tf.data.AUTOTUNE).unbatch()

    def prediction_label(self, text, references=None):
        """The label a decoded text predicts: its label-word index (-1 for
        no label word), or the free-form targets' `prediction_label`."""
        if self.targets is not None:
            return int(self.targets.prediction_label(text, references))
        text = text.strip()
        return self.label_words.index(text) if text in self.label_words else -1

    def compute_metrics(self, predictions, labels, *, texts=None,
                        references=None, groups=None):
        """Score predictions in percent.

        Args:
            predictions: predicted label indices (`-1` = no label word), or
                for free-form tasks the `prediction_label`s.
            labels: the true labels.
            texts: the decoded texts (for free-form metrics).
            references: a list of reference answers per example.
            groups: a group id per example (for grouped tasks).
        """
        num_classes = (len(self.label_words) if self.label_words is not None
                       else None)
        return compute_metrics(
            self.metrics, predictions, labels, num_classes, texts=texts,
            references=references, groups=groups)

    def __repr__(self):
        kind = (f"labels={self.label_words}" if self.label_words is not None
                else f"targets={type(self.targets).__name__}")
        return f"Task(name={self.name!r}, {kind}, metrics={list(self.metrics)})"
