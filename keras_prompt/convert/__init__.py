"""Hugging Face interchange: T5 checkpoints -> KerasHub, PEFT prompt adapters.

Importing this package registers the `keras_prompt>gelu_tanh` activation used
by converted T5 1.1 backbones.
"""

from keras_prompt.convert.activations import gelu_tanh
from keras_prompt.convert.errors import HFCheckpointError
from keras_prompt.convert.hf_t5 import is_hf_t5_checkpoint
from keras_prompt.convert.hf_t5 import load_hf_t5
from keras_prompt.convert.hf_t5 import save_keras_preset
from keras_prompt.convert.peft import export_peft
from keras_prompt.convert.peft import import_peft
