"""The error raised when an export cannot produce a valid artifact."""


class ExportError(RuntimeError):
    """An export failed, or produced an artifact that does not validate.

    Raised, for example, when tf2onnx leaves an unsupported op or a dangling
    graph input in an ONNX file, when onnxruntime cannot open the file, or
    when a TFLite conversion needs non-builtin ops. Nothing is left at the
    destination when this is raised.

    Example:
    ```python
    try:
        keras_prompt.export.export_onnx(model, "model.onnx", mode="baked")
    except keras_prompt.export.ExportError as error:
        print("export failed:", error)
    ```
    """
