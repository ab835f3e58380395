"""The built-in demo: the `t5_tiny_demo` backbone, its pretraining mixture,
two held-out tasks (`demo_animal`, `demo_mood`, registered with the task
registry like any other task) and `keras-prompt quickstart`."""


def run_quickstart(*args, **kwargs):
    """See `keras_prompt.quickstart.run.run_quickstart`."""
    from keras_prompt.quickstart.run import run_quickstart as run

    return run(*args, **kwargs)
