"""Build a `Task` over the user's CSV/TSV/JSONL files."""

from keras_prompt.data.file_source import FileSource
from keras_prompt.data.task import Task
from keras_prompt.data.template_formatter import TemplateFormatter


def file_task(template, label_column, labels, train_file=None,
              validation_file=None, test_file=None, metric="accuracy",
              name="custom", file_format=None):
    """A task over local files with a user template.

    Args:
        template: e.g. `"premise: {premise} hypothesis: {hypothesis}"`.
        label_column: the column holding the label (a label word or index).
        labels: the label words, a list or a comma-separated string.
        train_file, validation_file, test_file: the split files.
        metric: `"accuracy"`, `"f1"` or `"macro_f1"`, or a list of them (the
            first is the main metric).
        name: the task name recorded in prompt files.
        file_format: `"csv"`, `"tsv"` or `"jsonl"`; inferred by default.

    Example:

    ```python
    task = file_task("premise: {premise} hypothesis: {hypothesis}", "label",
                     "yes,no", train_file="train.csv",
                     validation_file="dev.csv")
    ```
    """
    if isinstance(labels, str):
        labels = [w.strip() for w in labels.split(",") if w.strip()]
    if isinstance(metric, str):
        metric = [m.strip() for m in metric.split(",") if m.strip()]
    formatter = TemplateFormatter(template)
    files = {"train": train_file, "validation": validation_file,
             "test": test_file}
    files = {k: v for k, v in files.items() if v}
    source = FileSource(files, formatter.columns, label_column, labels,
                        file_format=file_format)
    return Task(name, source, formatter, labels, metrics=metric,
                description=f"files {sorted(files.values())}")
