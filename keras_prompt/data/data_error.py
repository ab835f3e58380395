"""The error raised for bad task data."""


class DataError(ValueError):
    """Raised when task data is missing, empty or malformed.

    The message always names the problem (file, column, row or split) and says
    how to fix it. It subclasses `ValueError`, so generic handlers still work.

    Example:

    ```python
    from keras_prompt.data import DataError

    try:
        raise DataError("Column 'label' is missing from 'train.csv'.")
    except ValueError as e:
        print(e)
    ```
    """
