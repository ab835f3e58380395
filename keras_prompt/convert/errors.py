"""Errors raised by the Hugging Face T5 checkpoint converter."""


class HFCheckpointError(ValueError):
    """A Hugging Face checkpoint cannot be converted to a KerasHub T5 model.

    The message names the offending file, config field or weight (an
    unsupported architecture, a missing weight, a shape that disagrees with
    `config.json`, ...). It subclasses `ValueError`, so callers that already
    catch `ValueError` keep working.

    Example:
    ```python
    from keras_prompt.convert import HFCheckpointError, load_hf_t5

    try:
        backbone, preprocessor = load_hf_t5("path/to/bert-base-uncased")
    except HFCheckpointError as error:
        print(error)  # ... model_type 'bert' is not supported ...
    ```
    """
