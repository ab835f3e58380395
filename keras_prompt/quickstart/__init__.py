"""The built-in demo: the `t5_tiny_demo` backbone, its pretraining mixture,
two held-out tasks (`demo_animal`, `demo_mood`, registered here as tasks
like any other) and `keras-prompt quickstart`."""

from keras_prompt.quickstart.tasks import PROMPT_DESIGNS
from keras_prompt.quickstart.tasks import TASKS
from keras_prompt.quickstart.tasks import register_tasks

register_tasks()

__all__ = ["PROMPT_DESIGNS", "TASKS", "register_tasks", "run_quickstart"]


def run_quickstart(*args, **kwargs):
    """See `keras_prompt.quickstart.run.run_quickstart`."""
    from keras_prompt.quickstart.run import run_quickstart as run

    return run(*args, **kwargs)
