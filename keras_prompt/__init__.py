"""keras-prompt: prompt tuning (Lester et al., 2021) for KerasHub T5 models."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# `convert` registers the tanh GELU that converted T5 1.1 presets use.
from keras_prompt import convert  # noqa: E402
from keras_prompt import data  # noqa: E402
from keras_prompt import initializers  # noqa: E402
from keras_prompt import optimizers  # noqa: E402
from keras_prompt import quickstart  # noqa: E402  (registers the demo tasks)
from keras_prompt import training  # noqa: E402
from keras_prompt.layers.prompt_layer import PromptLayer  # noqa: E402
from keras_prompt.models.prompted_t5_seq2seq_lm import (  # noqa: E402
    PromptedT5Seq2SeqLM,
)
from keras_prompt.nearest_tokens import nearest_tokens  # noqa: E402
from keras_prompt.prompts.prompt_file import PromptFileError  # noqa: E402
from keras_prompt.prompts.prompt_file import backbone_fingerprint  # noqa: E402
from keras_prompt.prompts.prompt_file import read_prompt_file  # noqa: E402
from keras_prompt.prompts.prompt_file import save_prompt_file  # noqa: E402
from keras_prompt.training import evaluate  # noqa: E402
from keras_prompt.training import train  # noqa: E402
from keras_prompt.version import __version__  # noqa: E402
