"""T5's text-to-text formatting of GLUE and SuperGLUE examples."""

import tensorflow as tf


class GlueFormatter:
    """Formats an example the way T5's `preprocessors.glue` does.

    The input text is the benchmark name followed by `"<feature>: <value>"`
    for each text feature, joined by single spaces. Without an explicit order
    the features are sorted by name, exactly as T5 does, e.g. SuperGLUE RTE
    becomes `"rte hypothesis: ... premise: ..."` and GLUE MRPC
    `"mrpc sentence1: ... sentence2: ..."`. The target is the label word.

    For MultiRC T5 also removes the paragraph's HTML markup from the joined
    string: each `<br>` becomes a space and `<b>`/`</b>` are dropped.

    Args:
        benchmark_name: the prefix, e.g. `"rte"`.
        feature_names: the text features in output order.
        sort_features: sort `feature_names` by name (T5's default when it is
            not given an order). Defaults to `True`.
        remove_html: remove `<br>`, `<b>` and `</b>` as T5 does for
            MultiRC. Defaults to `None`: only when `benchmark_name` is
            `"multirc"`, as in T5.

    Example:

    ```python
    formatter = GlueFormatter("mrpc", ["sentence2", "sentence1"])
    text = formatter({"sentence1": tf.constant("A."),
                      "sentence2": tf.constant("B.")})
    # b"mrpc sentence1: A. sentence2: B."
    ```
    """

    def __init__(self, benchmark_name, feature_names, sort_features=True,
                 remove_html=None):
        self.benchmark_name = benchmark_name
        self.remove_html = (benchmark_name == "multirc" if remove_html is None
                            else bool(remove_html))
        feature_names = list(feature_names)
        self.feature_names = (
            sorted(feature_names) if sort_features else feature_names
        )

    @property
    def columns(self):
        """The features an example must have."""
        return list(self.feature_names)

    def __call__(self, example):
        """Return the formatted input string tensor for one example."""
        parts = [tf.constant(self.benchmark_name)]
        for name in self.feature_names:
            parts.append(tf.constant(f"{name}:"))
            parts.append(tf.strings.as_string(example[name])
                         if example[name].dtype != tf.string
                         else example[name])
        joined = tf.strings.join(parts, separator=" ")
        if self.remove_html:
            joined = tf.strings.regex_replace(joined, "<br>", " ")
            joined = tf.strings.regex_replace(joined, "</?b>", "")
        return joined

    def get_config(self):
        config = {
            "benchmark_name": self.benchmark_name,
            "feature_names": self.feature_names,
            "sort_features": False,
        }
        # Only when it differs from the default, so that the configs of the
        # other tasks (part of a training run's identity) stay as they were.
        if self.remove_html != (self.benchmark_name == "multirc"):
            config["remove_html"] = self.remove_html
        return config
