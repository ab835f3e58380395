import keras
import numpy as np
from keras import ops

# The defaults of the official code (github.com/arazd/ResidualPrompts,
# `train.py` and `ResMLP` in `prompt_tuner2.py`): `--bottleneck_size 800`,
# `--mlp_layer_norm 1` with PyTorch's `nn.LayerNorm` (epsilon 1e-5).
DEFAULT_BOTTLENECK_SIZE = 800
LAYER_NORM_EPSILON = 1e-5


def _torch_linear_initializers(fan_in, seeds):
    """PyTorch `nn.Linear`'s default initialization, as the official code
    gets it: kernel and bias uniform in `+-1 / sqrt(fan_in)`."""
    limit = float(fan_in) ** -0.5
    kernel = keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seeds[0]
    )
    bias = keras.initializers.RandomUniform(-limit, limit, seed=seeds[1])
    return kernel, bias


@keras.saving.register_keras_serializable(package="keras_prompt")
class ResidualPromptReparameterization(keras.layers.Layer):
    """Residual reparameterization of a soft prompt (Razdaibiedina et al.,
    Findings of ACL 2023).

    Maps the trainable prompt `P` (`[prompt_length, hidden_dim]`) to the
    prompt the encoder sees, `P + LayerNorm(W_up · ReLU(W_down · P))`: one
    shallow MLP with a bottleneck, shared by all prompt tokens and applied to
    each token independently, with a skip connection. `P` and the MLP train
    together; once trained, the output (the folded prompt) replaces `P` and
    the MLP is discarded, so serving is plain prompt tuning.

    As in the official code (`ResMLP`, type `MLP1`): linear down-projection,
    ReLU, linear up-projection, layer norm over the hidden axis (learned scale
    and offset, epsilon 1e-5), then the skip connection; no dropout; the
    linear layers start as PyTorch's `nn.Linear` does (kernel and bias
    uniform in `+-1/sqrt(fan_in)`).

    The layer computes in float32 whatever the dtype policy, like the prompt
    it reparameterizes.

    Args:
        bottleneck_size: int. Width of the MLP's hidden layer; defaults to
            800, the official code's default.
        seed: optional int seeding the initial MLP weights.
        **kwargs: other arguments for `keras.layers.Layer`, e.g. `name`.

    Call arguments:
        prompt: float tensor `[prompt_length, hidden_dim]`.

    Returns:
        The reparameterized prompt, float32 `[prompt_length, hidden_dim]`.

    Example:
    ```python
    layer = keras_prompt.layers.ResidualPromptReparameterization(
        bottleneck_size=32, seed=0
    )
    prompt = np.random.uniform(-0.5, 0.5, (4, 8)).astype("float32")
    layer(prompt).shape  # (4, 8)
    layer.zero_residual()
    np.testing.assert_array_equal(layer(prompt), prompt)
    ```
    """

    def __init__(self, bottleneck_size=DEFAULT_BOTTLENECK_SIZE, seed=None, **kwargs):
        kwargs.pop("dtype", None)  # Always float32, like the prompt.
        super().__init__(dtype="float32", **kwargs)
        if (
            isinstance(bottleneck_size, bool)
            or not isinstance(bottleneck_size, (int, np.integer))
            or bottleneck_size < 1
        ):
            raise ValueError(
                "`bottleneck_size` must be a positive integer (the official "
                f"code's default is {DEFAULT_BOTTLENECK_SIZE}); got "
                f"{bottleneck_size!r}."
            )
        self.bottleneck_size = int(bottleneck_size)
        self.seed = seed

    def build(self, prompt_shape):
        hidden_dim = int(prompt_shape[-1])
        # Four distinct seeds, none equal to `seed` itself (which may also
        # seed the prompt's own initializer).
        if self.seed is None:
            seeds = [None] * 4
        else:
            seeds = [
                int(s)
                for s in np.random.default_rng(self.seed).integers(2**31, size=4)
            ]
        kernel, bias = _torch_linear_initializers(hidden_dim, seeds[:2])
        self.down = keras.layers.Dense(
            self.bottleneck_size,
            activation="relu",
            kernel_initializer=kernel,
            bias_initializer=bias,
            dtype="float32",
            name="down",
        )
        kernel, bias = _torch_linear_initializers(self.bottleneck_size, seeds[2:])
        self.up = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=kernel,
            bias_initializer=bias,
            dtype="float32",
            name="up",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype="float32", name="layer_norm"
        )
        self.down.build(prompt_shape)
        self.up.build(tuple(prompt_shape[:-1]) + (self.bottleneck_size,))
        self.layer_norm.build(prompt_shape)
        self.built = True

    def call(self, prompt):
        prompt = ops.cast(prompt, "float32")
        return prompt + self.layer_norm(self.up(self.down(prompt)))

    def zero_residual(self):
        """Zeros the layer norm's scale and offset, so that the layer returns
        its input exactly (the residual branch adds 0) until training moves
        them: the scale's gradient is the normalized MLP output, so the MLP
        comes back into play from the first step."""
        self.layer_norm.gamma.assign(ops.zeros_like(self.layer_norm.gamma))
        self.layer_norm.beta.assign(ops.zeros_like(self.layer_norm.beta))

    def compute_output_shape(self, prompt_shape):
        return prompt_shape

    def get_config(self):
        config = super().get_config()
        config.update({"bottleneck_size": self.bottleneck_size, "seed": self.seed})
        return config
