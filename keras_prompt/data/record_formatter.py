"""T5's text-to-text formatting of SuperGLUE ReCoRD inputs."""

import tensorflow as tf


class RecordFormatter:
    """Formats a ReCoRD example's input the way T5's `record` preprocessor
    does.

    The input is `"record query: <query> entities: <e1>, <e2>, ...
    passage: <passage>"`. ReCoRD passages mark their highlights (the
    article's bullet points) with `"\\n@highlight\\n"`; like T5, a highlight
    after a sentence-ending `.`, `?`, `!`, `"` or `'` becomes a space, any
    other becomes `". "`. The query keeps its `@placeholder`: the target is
    the entity that fills it (see `RecordTargets`).

    Args:
        benchmark_name: the prefix. Defaults to `"record"`.

    Example:

    ```python
    formatter = RecordFormatter()
    text = formatter({
        "query": tf.constant("@placeholder won."),
        "entities": tf.constant(["Ann", "Bob"]),
        "passage": tf.constant("Ann met Bob.\\n@highlight\\nAnn won"),
    })
    # b"record query: @placeholder won. entities: Ann, Bob passage: Ann met
    #   Bob. Ann won"
    ```
    """

    def __init__(self, benchmark_name="record"):
        self.benchmark_name = benchmark_name

    @property
    def columns(self):
        """The features an example must have."""
        return ["query", "entities", "passage"]

    def __call__(self, example):
        """Return the formatted input string tensor for one example."""
        passage = example["passage"]
        # The first rule must run first: it keeps a sentence's own ending
        # instead of adding a second one.
        passage = tf.strings.regex_replace(
            passage, r"(\.|\?|\!|\"|')\n@highlight\n", r"\1 ")
        passage = tf.strings.regex_replace(passage, r"\n@highlight\n", ". ")
        entities = tf.strings.reduce_join(example["entities"], separator=", ")
        return tf.strings.join(
            [f"{self.benchmark_name} query:", example["query"], "entities:",
             entities, "passage:", passage], separator=" ")

    def get_config(self):
        return {"benchmark_name": self.benchmark_name}
