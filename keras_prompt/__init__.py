"""keras-prompt: prompt tuning (Lester et al., 2021) for KerasHub T5 models.

Everything is imported on first use, so `import keras_prompt` (and the
`keras-prompt` command's help) does not start TensorFlow.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_prompt.utils.cpu_defaults import request_onednn  # noqa: E402
from keras_prompt.version import __version__  # noqa: E402

# TensorFlow's oneDNN CPU kernels train faster; it reads the switch only when
# it starts, so this acts only if keras_prompt is imported first.
request_onednn()

# Public name -> module that defines it.
_ATTRIBUTES = {
    "PromptLayer": "keras_prompt.layers.prompt_layer",
    "PromptedT5Seq2SeqLM": "keras_prompt.models.prompted_t5_seq2seq_lm",
    "PromptedCausalLM": "keras_prompt.models.prompted_causal_lm",
    "PromptBank": "keras_prompt.prompts.prompt_bank",
    "PromptFileError": "keras_prompt.prompts.prompt_file",
    "backbone_fingerprint": "keras_prompt.prompts.prompt_file",
    "read_prompt_file": "keras_prompt.prompts.prompt_file",
    "save_prompt_file": "keras_prompt.prompts.prompt_file",
    "nearest_tokens": "keras_prompt.nearest_tokens",
    "TrainConfig": "keras_prompt.training.train_config",
    "train": "keras_prompt.training.train",
    "evaluate": "keras_prompt.training.evaluate",
    "ensemble": "keras_prompt.training.ensemble",
}
_SUBPACKAGES = (
    "convert",
    "data",
    "export",
    "initializers",
    "layers",
    "models",
    "optimizers",
    "prompts",
    "quickstart",
    "training",
)

__all__ = sorted(list(_ATTRIBUTES) + list(_SUBPACKAGES) + ["__version__"])


def __getattr__(name):
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"keras_prompt.{name}")
    else:
        raise AttributeError(f"module 'keras_prompt' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
