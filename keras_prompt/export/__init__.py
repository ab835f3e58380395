"""Exporters: SavedModel (TF Serving), ONNX (tf2onnx) and LiteRT/TFLite.

Three prompt modes: `"baked"` (one prompt frozen in), `"runtime"` (the prompt
is an input) and `"bank"` (named prompts frozen in; each example picks its
task, so one batch can mix tasks).
"""

from keras_prompt.export.export_error import ExportError
from keras_prompt.export.export_prompts import ExportPrompts
from keras_prompt.export.onnx_export import export_onnx
from keras_prompt.export.saved_model_export import export_saved_model
from keras_prompt.export.t5_inference_module import T5InferenceModule
from keras_prompt.export.tflite_export import export_tflite

__all__ = [
    "ExportError",
    "ExportPrompts",
    "T5InferenceModule",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
]
