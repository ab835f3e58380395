from keras_prompt.layers.prompt_layer import PromptLayer
from keras_prompt.layers.residual_prompt_reparameterization import (
    ResidualPromptReparameterization,
)
