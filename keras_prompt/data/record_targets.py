"""ReCoRD's free-form targets: the entities that fill the query."""

import tensorflow as tf

# T5's target for an example without answers (the test split).
UNKNOWN_TARGET = "<unk>"


class RecordTargets:
    """The targets and reference answers of SuperGLUE ReCoRD, as in T5.

    A ReCoRD example has a list of `answers` (the entities that correctly
    fill the query's `@placeholder`). As T5's `record` preprocessor does,
    training gets one example per answer (a query with two correct entities
    trains on both). Evaluation keeps one example per query, its answers as
    the references: T5 also makes one copy per answer but scores only the
    first copy of each query (`deduplicate_metric`), which is the same.
    Predictions are scored by `squad_exact_match` and `squad_f1`.

    ReCoRD has no classes: an example's `label` is 0 when it has answers
    and -1 when it has none (the test split; its target is `"<unk>"`, as in
    T5). `prediction_label` is 0 for an answer and -1 for an empty output,
    so the evaluator's `invalid` count is the number of empty outputs.

    Args:
        max_target_length: the decoder length in tokens, `</s>` included,
            used when none is given: long enough for nearly every entity
            name with T5's vocabulary.

    Example:

    ```python
    task = Task("record", source, RecordFormatter(), targets=RecordTargets(),
                metrics=("squad_f1", "squad_exact_match"),
                group_by=("idx/passage", "idx/query"))
    ```
    """

    def __init__(self, max_target_length=32):
        self.max_target_length = int(max_target_length)

    @property
    def columns(self):
        """The features an example must have."""
        return ["answers"]

    def __call__(self, example, training):
        """The targets of one example.

        Args:
            example: the source's feature dict (tensors).
            training: `True` for one target per answer, `False` for one
                example per query.

        Returns:
            dict with `targets` (1-D strings, one output example each),
            `references` (1-D strings, the answers) and `label` (int32).
        """
        answers = tf.reshape(example["answers"], [-1])
        has_answers = tf.size(answers) > 0
        unknown = tf.constant([UNKNOWN_TARGET])
        if training:
            targets = tf.cond(has_answers, lambda: answers, lambda: unknown)
        else:
            targets = tf.cond(
                has_answers, lambda: answers[:1], lambda: unknown)
        return {
            "targets": targets,
            "references": answers,
            "label": tf.where(has_answers, 0, -1),
        }

    def prediction_label(self, text, references):
        """0 for a predicted answer, -1 for an empty output."""
        return 0 if text.strip() else -1

    def get_config(self):
        return {"max_target_length": self.max_target_length}
