"""The task registry: look tasks up by name, register new ones."""

from keras_prompt.data.data_error import DataError

_TASKS = {}


def register_task(name, factory, overwrite=False):
    """Register a task under `name`.

    Args:
        name: the name users pass as `--task NAME`.
        factory: a `Task`, or a zero-argument callable returning a `Task`
            (called on each lookup, so registration stays cheap).
        overwrite: replace an existing task of the same name.

    Example:

    ```python
    register_task("my_nli", lambda: Task(...))
    task = get_task("my_nli")
    ```
    """
    if not overwrite and name in _TASKS:
        raise ValueError(
            f"A task named '{name}' is already registered; pass "
            "overwrite=True to replace it."
        )
    _TASKS[name] = factory


def get_task(name):
    """Return the registered `Task` called `name`.

    Raises:
        DataError: naming the known tasks when `name` is unknown.
    """
    _ensure_builtin_tasks()
    if name not in _TASKS:
        raise DataError(
            f"Unknown task '{name}'. Known tasks: {', '.join(list_tasks())}. "
            "For your own data build a file task (train_file/validation_file "
            "with template, label_column and labels)."
        )
    factory = _TASKS[name]
    return factory() if callable(factory) else factory


def list_tasks():
    """The names of all registered tasks, sorted."""
    _ensure_builtin_tasks()
    return sorted(_TASKS)


def _ensure_builtin_tasks():
    # Imported lazily so that importing the registry has no side effects
    # beyond registering the built-in GLUE/SuperGLUE tasks and the demo's
    # held-out tasks once.
    from keras_prompt.data import glue_tasks  # noqa: F401
    from keras_prompt.quickstart.tasks import register_tasks

    register_tasks()


def resolve_task(task=None, *, train_file=None, validation_file=None,
                 test_file=None, template=None, label_column="label",
                 labels=None, metric="accuracy", file_format=None,
                 name=None):
    """A `Task` from a name, a `Task`, or file arguments.

    Args:
        task: a registered task name or a `Task`. When `None`, a file task is
            built from the other arguments.
        train_file, validation_file, test_file, template, label_column,
        labels, metric, file_format: see `keras_prompt.data.file_task`.
        name: the name of a file task (default `"custom"`).

    Example:

    ```python
    task = resolve_task("rte")
    task = resolve_task(train_file="train.csv", template="q: {q}",
                        label_column="label", labels="yes,no")
    ```
    """
    from keras_prompt.data.file_task import file_task
    from keras_prompt.data.task import Task

    if isinstance(task, Task):
        return task
    if task is not None:
        return get_task(task)
    if not (train_file or validation_file or test_file):
        raise DataError(
            "No task given: pass a task name (e.g. 'rte'; known: "
            f"{', '.join(list_tasks())}) or your files as train_file/"
            "validation_file with template, label_column and labels."
        )
    if not template:
        raise DataError(
            "File tasks need a template naming their columns, e.g. "
            "template='premise: {premise} hypothesis: {hypothesis}'."
        )
    if not labels:
        raise DataError(
            "File tasks need their label words, e.g. "
            "labels='entailment,not_entailment' (the label column holds these words "
            "or their 0-based index)."
        )
    return file_task(template, label_column, labels, train_file=train_file,
                     validation_file=validation_file, test_file=test_file,
                     metric=metric, name=name or "custom",
                     file_format=file_format)
