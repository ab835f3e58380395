"""User templates such as `"premise: {premise} hypothesis: {hypothesis}"`."""

import string

import tensorflow as tf

from keras_prompt.data.data_error import DataError


class TemplateFormatter:
    """Formats an example with a `str.format`-style template over its columns.

    Each `{name}` is replaced by the value of column `name`; `{{` and `}}` are
    literal braces. Formatting runs inside `tf.data` (graph mode).

    Args:
        template: the template string. It must name at least one column.

    Example:

    ```python
    formatter = TemplateFormatter("premise: {premise} hypothesis: {hypothesis}")
    formatter.columns  # ["premise", "hypothesis"]
    formatter.format_python({"premise": "It rains.", "hypothesis": "Wet."})
    # "premise: It rains. hypothesis: Wet."
    ```
    """

    def __init__(self, template):
        if not isinstance(template, str) or not template:
            raise DataError(
                "The template must be a non-empty string such as "
                "'premise: {premise} hypothesis: {hypothesis}'."
            )
        self.template = template
        self._parts = []  # (literal, field or None)
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as e:
            raise DataError(
                f"Cannot parse the template {template!r}: {e}. Use {{column}} "
                # Not an f-string: the braces below are printed as written.
                "for a column and {{ / }} for literal braces."
            ) from e
        columns = []
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if field == "" or field.isdigit():
                    raise DataError(
                        f"The template {template!r} has a positional field "
                        "'{}'; name the column instead, e.g. '{premise}'."
                    )
                if spec or conversion:
                    raise DataError(
                        f"The template {template!r} uses a format spec or "
                        f"conversion on '{field}'; only plain '{{{field}}}' "
                        "fields are supported."
                    )
                if field not in columns:
                    columns.append(field)
            self._parts.append((literal, field))
        if not columns:
            raise DataError(
                f"The template {template!r} names no column. Put column names "
                "in braces, e.g. 'premise: {premise} hypothesis: {hypothesis}'."
            )
        self._columns = columns

    @property
    def columns(self):
        """The column names the template uses, in order of appearance."""
        return list(self._columns)

    def __call__(self, example):
        """Return the formatted input string tensor for one example."""
        pieces = []
        for literal, field in self._parts:
            if literal:
                pieces.append(tf.constant(literal))
            if field is not None:
                value = example[field]
                if value.dtype != tf.string:
                    value = tf.strings.as_string(value)
                pieces.append(value)
        return tf.strings.join(pieces)

    def format_python(self, row):
        """Format a plain Python dict (used for ad-hoc prediction)."""
        return self.template.format(**{c: row[c] for c in self._columns})

    def get_config(self):
        return {"template": self.template}
