"""A formatter without the task name in front of the input."""

import tensorflow as tf


class TasklessFormatter:
    """Wraps a formatter and drops the first word of its input.

    The prompt-tuning paper's "taskless" tasks leave out T5's task prefix
    (`"rte hypothesis: ..."` becomes `"hypothesis: ..."`): the soft prompt
    alone must tell the model the task. As the official code
    (`remove_first_text_token`) does, everything up to and including the
    first space is removed: `"wsc: ..."` becomes `"..."`, `"record query:
    ..."` becomes `"query: ..."`. An input without a space stays as it is.

    Args:
        formatter: the formatter whose output loses its first word.

    Example:

    ```python
    formatter = TasklessFormatter(GlueFormatter("rte", ["premise",
                                                        "hypothesis"]))
    formatter({"premise": tf.constant("P."),
               "hypothesis": tf.constant("H.")})
    # b"hypothesis: H. premise: P."
    ```
    """

    def __init__(self, formatter):
        self.formatter = formatter

    @property
    def columns(self):
        """The features an example must have."""
        return list(self.formatter.columns)

    def __call__(self, example):
        """Return the formatted input string tensor for one example."""
        return tf.strings.regex_replace(
            self.formatter(example), "^[^ ]* ", "", replace_global=False)

    def get_config(self):
        get_config = getattr(self.formatter, "get_config", None)
        return {
            "formatter": type(self.formatter).__name__,
            "formatter_config": get_config() if callable(get_config) else None,
        }
