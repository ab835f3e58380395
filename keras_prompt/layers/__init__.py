from keras_prompt.layers.prompt_layer import PromptLayer
from keras_prompt.layers.residual_prompt_reparameterization import (
    ResidualPromptReparameterization,
)
from keras_prompt.layers.sixteen_bit_dropout import SixteenBitDropout
from keras_prompt.layers.sixteen_bit_dropout import use_sixteen_bit_dropout
