"""WSC's free-form targets: the referent of the marked pronoun."""

import tensorflow as tf

# The words T5's `wsc_simple` postprocessor ignores when it compares a
# predicted referent with the candidate.
DETERMINERS = frozenset({
    "a", "an", "few", "her", "his", "each", "every", "many", "much", "my",
    "our", "some", "that", "the", "their", "these", "this", "those",
    "which", "whose", "your",
})


def _without_determiners(text):
    # Split on single spaces, as T5 does: the result is compared as a set of
    # words, so runs of spaces only add an empty word on both sides alike.
    words = text.strip().lower().split(" ")
    return " ".join(w for w in words if w not in DETERMINERS)


def wsc_referent_match(prediction, referent):
    """Whether a predicted text names the candidate referent (T5's
    `wsc_simple` postprocessor).

    Both are lowercased and stripped of determiners ("the", "his", ...).
    They match when the words of one are a subset of the other's ("fuzzy
    bunny" names "bunny" and the other way round), unless only one of them
    has an apostrophe ("Bob" does not name "Bob's hat").

    Args:
        prediction: the decoded model output.
        referent: the candidate referent (`span1_text`).

    Returns:
        1 for a match, 0 for none, -1 for a prediction that is empty once
        cleaned (so it never matches a label by accident).

    Example:

    >>> wsc_referent_match("The fuzzy bunny", "bunny")
    1
    >>> wsc_referent_match("Bob", "Bob's hat")
    0
    """
    prediction = _without_determiners(prediction)
    if not prediction:
        return -1
    referent = _without_determiners(referent)
    if ("'" in prediction) != ("'" in referent):
        return 0
    prediction_words = set(prediction.split(" "))
    referent_words = set(referent.split(" "))
    return int(prediction_words <= referent_words
               or referent_words <= prediction_words)


class WscTargets:
    """The targets of SuperGLUE WSC as T5's `wsc_simple` task makes them.

    The target is the candidate referent `span1_text`. The label says
    whether it is the pronoun's referent, so, as T5 does
    (`correct_referent_only` for training), training keeps only the
    examples whose label is True. Evaluation keeps every example: the
    prediction counts as naming the candidate when `wsc_referent_match`
    says so, and accuracy compares that with the label (T5's
    `wsc_simple` postprocessor and accuracy).

    Args:
        max_target_length: the decoder length in tokens, `</s>` included,
            used when none is given.

    Example:

    ```python
    task = Task("wsc", source, WscFormatter(), targets=WscTargets(),
                metrics=("accuracy",))
    ```
    """

    def __init__(self, max_target_length=16):
        self.max_target_length = int(max_target_length)

    @property
    def columns(self):
        """The features an example must have."""
        return ["span1_text", "label"]

    def __call__(self, example, training):
        """The targets of one example.

        Args:
            example: the source's feature dict (tensors).
            training: `True` to keep only correct referents.

        Returns:
            dict with `targets` (1-D strings: the referent, or nothing for a
            wrong referent in training), `references` (the referent) and
            `label` (int32, -1 when unlabelled).
        """
        referent = tf.reshape(example["span1_text"], [1])
        label = tf.cast(example["label"], tf.int32)
        targets = referent
        if training:
            targets = referent[:tf.cast(tf.equal(label, 1), tf.int32)]
        return {"targets": targets, "references": referent, "label": label}

    def prediction_label(self, text, references):
        """1 if `text` names the referent, 0 if not, -1 if empty."""
        referent = references[0]
        if isinstance(referent, bytes):
            referent = referent.decode("utf-8")
        return wsc_referent_match(text, referent)

    def get_config(self):
        return {"max_target_length": self.max_target_length}
