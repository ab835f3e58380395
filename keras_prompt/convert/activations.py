"""The tanh-approximated GELU of T5 1.1, as a serializable Keras activation.

Hugging Face's T5 1.1 / LM-adapted / Flan-T5 checkpoints use gated GELU with
the *tanh approximation* (`dense_act_fn = "gelu_new"`):

    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))

Keras' `"gelu"` string is the *exact* (erf) GELU, which differs by up to
~5e-3 in the logits of a small model. KerasHub's `T5TransformerLayer` resolves
its activation with `keras.activations.get(activation)` and `T5Backbone`
serializes it with `keras.activations.serialize`, so any function registered
with `keras.saving.register_keras_serializable` round-trips through a
backbone config and a KerasHub preset.

The registration happens when this module is imported, and Keras only
auto-imports modules of its own packages when deserializing: a process must
`import keras_prompt` (whose `__init__` imports `keras_prompt.convert`)
before `keras_hub.models.T5Backbone.from_preset(dir)` on a converted T5 1.1
preset, or the load fails with "Could not locate function
'keras_prompt>gelu_tanh'".
"""

import keras

# Registered name: "keras_prompt>gelu_tanh".
GELU_TANH_NAME = "keras_prompt>gelu_tanh"


@keras.saving.register_keras_serializable(package="keras_prompt", name="gelu_tanh")
def gelu_tanh(x):
    """GELU with the tanh approximation (Hugging Face `gelu_new`).

    Registered as a Keras serializable object (`"keras_prompt>gelu_tanh"`) so
    a `T5Backbone(activation=gelu_tanh)` config survives
    `save_to_preset` / `from_preset`.

    Args:
        x: input tensor.

    Returns:
        A tensor of the same shape and dtype as `x`.

    Example:
    ```python
    import numpy as np
    from keras_prompt.convert.activations import gelu_tanh

    y = gelu_tanh(np.array([-1.0, 0.0, 1.0], "float32"))
    ```
    """
    return keras.activations.gelu(x, approximate=True)
