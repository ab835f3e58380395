"""T5's `wsc_simple` formatting of SuperGLUE WSC inputs."""

import tensorflow as tf

# Two examples of SuperGLUE `wsc.fixed` whose `span2_index` does not point
# at the pronoun; T5's `_wsc_inputs` gives them these fixed inputs (with the
# pronoun as "X"), and so do we.
_T5_SPECIAL_CASES = (
    ("The boy continued to whip the pony , and eventually the pony threw "
     "him over. John laughed out quite loud. \"Good for him,\" he said. ",
     "The boy continued to whip the pony , and eventually the pony threw "
     "him over. John laughed out quite loud. \"Good for X ,\" he said."),
    ("When they had eventually calmed down a bit , and had gotten home, "
     "Mr. Farley put the magic pebble in an iron safe . Some day they might "
     "want to use it , but really for now, what more could they wish for?",
     "When they had eventually calmed down a bit , and had gotten home, "
     "Mr. Farley put the magic pebble in an iron safe . Some day they might "
     "want to use X , but really for now, what more could they wish for?"),
)


class WscFormatter:
    """Formats a WSC example's input the way T5's `wsc_simple` does.

    The input is `"wsc: "` and the text with the pronoun marked by
    asterisks, e.g. `"wsc: Mitchell asked Tom if *he* could lend some
    money."`; the target is the candidate referent `span1_text` (see
    `WscTargets`). As in T5 the text is split on single spaces, the word at
    `span2_index` (counting from 0) is replaced by `X`, the words are
    joined again, and every `" X "` becomes `" *<span2_text>* "`. T5's two
    special cases of `wsc.fixed` (whose index is off) get T5's fixed text.

    T5 refuses a pronoun at index 0; here it is marked too
    (`"wsc: *He* left."`). An index outside the text, or a word at the
    index that is not `span2_text`, fails the `tf.data` pipeline with an
    `InvalidArgumentError` naming the text, the index and the pronoun.

    Args:
        prefix: the task prefix. Defaults to `"wsc:"`.

    Example:

    ```python
    formatter = WscFormatter()
    text = formatter({
        "text": tf.constant("Mitchell asked Tom if he could lend some money."),
        "span2_index": tf.constant(4),
        "span2_text": tf.constant("he"),
    })
    # b"wsc: Mitchell asked Tom if *he* could lend some money."
    ```
    """

    def __init__(self, prefix="wsc:"):
        self.prefix = prefix

    @property
    def columns(self):
        """The features an example must have."""
        return ["text", "span2_index", "span2_text"]

    def __call__(self, example):
        """Return the formatted input string tensor for one example."""
        text = example["text"]
        pronoun = example["span2_text"]
        index = tf.cast(example["span2_index"], tf.int32)
        words = tf.strings.split(text, sep=" ")
        num_words = tf.size(words)
        in_range = tf.logical_and(index >= 0, index < num_words)
        word = tf.gather(words, tf.clip_by_value(
            index, 0, tf.maximum(num_words - 1, 0)))
        blanked = tf.strings.join([
            tf.strings.reduce_join(words[:index], separator=" "),
            "X",
            tf.strings.reduce_join(words[index + 1:], separator=" "),
        ], separator=" ")
        is_special = tf.constant(False)
        for source, fixed in _T5_SPECIAL_CASES:
            matches = tf.equal(text, source)
            blanked = tf.where(matches, fixed, blanked)
            is_special = tf.logical_or(is_special, matches)
        check = tf.debugging.Assert(
            tf.logical_or(is_special,
                          tf.logical_and(in_range, tf.equal(word, pronoun))),
            ["WSC example: the word at span2_index", index, "is not "
             "span2_text", pronoun, "in text", text, "(words split on single "
             "spaces, counted from 0). Fix span2_index or span2_text."],
            summarize=3)
        with tf.control_dependencies([check]):
            marked = tf.strings.regex_replace(
                blanked, " X ", tf.strings.join([" *", pronoun, "* "]))
        # At index 0 the words before the pronoun are none, and their join
        # left a space in front.
        at_start = tf.logical_and(index == 0, tf.logical_not(is_special))
        marked = tf.where(at_start, tf.strings.substr(marked, 1, -1), marked)
        return tf.strings.join([self.prefix, marked], separator=" ")

    def get_config(self):
        return {"prefix": self.prefix}
