"""Exporters: SavedModel (TF Serving), ONNX (tf2onnx) and LiteRT/TFLite.

Three prompt modes: `"baked"` (one prompt frozen in), `"runtime"` (the prompt
is an input) and `"bank"` (named prompts frozen in; each example picks its
task, so one batch can mix tasks).

Every exporter traces the model's own code (`ExportModule`: the KerasHub
backbone's layers through the T5 model's `encode`/`decode`, or
`CausalExportModule`: a decoder-only model's `prompted_logits` and cached
layers, in the one cached decoding loop); none re-implements the network. Names are imported lazily,
so importing this package does not start TensorFlow.
"""

import importlib

_EXPORTS = {
    "ExportError": "keras_prompt.export.export_error",
    "ExportPrompts": "keras_prompt.export.export_prompts",
    "CausalExportModule": "keras_prompt.export.causal_export_module",
    "ExportModule": "keras_prompt.export.export_module",
    "export_onnx": "keras_prompt.export.onnx_export",
    "export_saved_model": "keras_prompt.export.saved_model_export",
    "export_tflite": "keras_prompt.export.tflite_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'keras_prompt.export' has no attribute {name!r}"
    )


def __dir__():
    return sorted(list(globals()) + __all__)
