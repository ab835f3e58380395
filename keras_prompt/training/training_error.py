"""The error raised for bad training arguments or environments."""


class TrainingError(ValueError):
    """Raised before training starts when an argument or the environment is
    wrong (zero batch size, missing TPU, ...). The message names the problem
    and the fix.

    Example:

    ```python
    from keras_prompt.training import TrainingError

    try:
        raise TrainingError("The batch size must be positive, got 0.")
    except ValueError as e:
        print(e)
    ```
    """
