import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_prompt")
class PromptLayer(keras.layers.Layer):
    """Prepends a trainable soft prompt to a batch of token embeddings.

    This is the one trainable piece of prompt tuning (Lester et al., 2021):
    a free `[prompt_length, hidden_dim]` matrix that is concatenated in front
    of the embedded encoder input. The padding mask is extended with ones so
    that every prompt position is attended to.

    For mixed-task batches, `call()` also accepts a per-example `prompt` of
    shape `[batch, prompt_length, hidden_dim]`, which replaces the layer's
    own weight for that call.

    The weight is always kept in float32 (under a mixed precision policy it
    is cast to the compute dtype when used), so small updates are not lost.

    With a `reparameterization` (e.g. `ResidualPromptReparameterization`),
    the layer's own prompt is `reparameterization(weight)`, computed anew in
    every call so that the reparameterization trains with the weight;
    `effective_prompt()` returns it. Per-example prompts are used as given
    (they are already effective prompts).

    Args:
        prompt_length: int. Number of prompt vectors (the paper uses 100);
            0 adds none (the frozen model alone, e.g. for prompt design).
        hidden_dim: int. Size of each vector; must equal the backbone's
            hidden size.
        initializer: a Keras initializer (instance or name) for the prompt.
            Defaults to uniform in `[-0.5, 0.5]`, the paper's random init.
        reparameterization: optional layer mapping the prompt weight
            `[prompt_length, hidden_dim]` to the prompt the encoder sees
            (same shape), with a `zero_residual()` method that makes it the
            identity; see `ResidualPromptReparameterization`.
        **kwargs: other arguments for `keras.layers.Layer`, e.g. `name`,
            `dtype`.

    Call arguments:
        embeddings: float tensor `[batch, length, hidden_dim]`.
        padding_mask: int or bool tensor `[batch, length]`.
        prompt: optional float tensor `[batch, prompt_length, hidden_dim]`.

    Returns:
        A tuple `(prompted_embeddings, prompted_padding_mask)` of shapes
        `[batch, prompt_length + length, hidden_dim]` and
        `[batch, prompt_length + length]` (the mask keeps its dtype).

    Example:
    ```python
    layer = keras_prompt.PromptLayer(prompt_length=4, hidden_dim=8)
    embeddings = np.random.rand(2, 5, 8).astype("float32")
    mask = np.ones((2, 5), "int32")
    prompted, prompted_mask = layer(embeddings, mask)
    prompted.shape  # (2, 9, 8)
    ```
    """

    def __init__(
        self,
        prompt_length,
        hidden_dim,
        initializer=None,
        reparameterization=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            isinstance(prompt_length, bool)
            or int(prompt_length) != prompt_length
            or prompt_length < 0
        ):
            raise ValueError(
                f"`prompt_length` must be a non-negative integer (0 means no "
                f"prompt); got {prompt_length!r}."
            )
        if int(hidden_dim) != hidden_dim or hidden_dim < 1:
            raise ValueError(
                f"`hidden_dim` must be a positive integer; got {hidden_dim!r}."
            )
        self.prompt_length = int(prompt_length)
        self.hidden_dim = int(hidden_dim)
        if initializer is None:
            initializer = keras.initializers.RandomUniform(-0.5, 0.5)
        self.initializer = keras.initializers.get(initializer)
        self.reparameterization = reparameterization

    def build(self, input_shape=None):
        self.prompt = self.add_weight(
            name="prompt",
            shape=(self.prompt_length, self.hidden_dim),
            initializer=self.initializer,
            dtype="float32",
            trainable=True,
        )
        if self.reparameterization is not None:
            self.reparameterization.build((self.prompt_length, self.hidden_dim))
        self.built = True

    def effective_prompt(self):
        """The prompt the encoder sees, float32 `[prompt_length,
        hidden_dim]`: the weight, reparameterized if the layer has a
        reparameterization."""
        if self.reparameterization is None:
            return self.prompt
        return self.reparameterization(self.prompt)

    def assign_prompt(self, prompt):
        """Makes `prompt` (`[prompt_length, hidden_dim]`) the effective
        prompt: assigns the weight and, with a reparameterization, zeros its
        residual (`effective_prompt()` then returns `prompt` exactly)."""
        self.prompt.assign(prompt)
        if self.reparameterization is not None:
            self.reparameterization.zero_residual()

    def call(self, embeddings, padding_mask, prompt=None):
        batch_size = ops.shape(embeddings)[0]
        if prompt is None:
            prompt = ops.broadcast_to(
                ops.expand_dims(self.effective_prompt(), 0),
                (batch_size, self.prompt_length, self.hidden_dim),
            )
        else:
            self.check_prompt_shape(prompt)
        prompt = ops.cast(prompt, embeddings.dtype)
        prompted_embeddings = ops.concatenate([prompt, embeddings], axis=1)
        prompt_mask = ops.ones(
            (batch_size, self.prompt_length), dtype=padding_mask.dtype
        )
        prompted_mask = ops.concatenate([prompt_mask, padding_mask], axis=1)
        return prompted_embeddings, prompted_mask

    def check_prompt_shape(self, prompt):
        """Raises `ValueError` unless `prompt` is `[batch, prompt_length,
        hidden_dim]`."""
        shape = tuple(prompt.shape)
        expected = (self.prompt_length, self.hidden_dim)
        if len(shape) != 3 or tuple(shape[1:]) != expected:
            raise ValueError(
                f"A per-example prompt must have shape [batch, "
                f"{self.prompt_length}, {self.hidden_dim}] (batch, "
                f"prompt_length, hidden_dim); got {shape}."
            )

    def compute_output_shape(self, embeddings_shape, padding_mask_shape):
        batch, length, hidden = embeddings_shape
        total = None if length is None else length + self.prompt_length
        return (batch, total, hidden), (batch, total)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "prompt_length": self.prompt_length,
                "hidden_dim": self.hidden_dim,
                "initializer": keras.initializers.serialize(self.initializer),
                "reparameterization": None
                if self.reparameterization is None
                else keras.layers.serialize(self.reparameterization),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("reparameterization") is not None:
            config["reparameterization"] = keras.layers.deserialize(
                config["reparameterization"]
            )
        return cls(**config)
