"""A prompted T5 written in plain TensorFlow ops, for export.

The exporters never trace the Keras model itself. They copy the frozen
backbone's weights (and the prompts) into `tf.Variable`s held by a
`tf.Module` and re-express the forward pass with a small set of TensorFlow
ops that tf2onnx and the TFLite converter both handle:

- no captured eager tensors (every constant is created inside the trace,
  scales are Python floats), so tf2onnx never leaves a dangling graph input;
- no `StridedSlice` with a new axis (`expand_dims` instead), which TFLite
  rejects with dynamic shapes;
- T5's relative-position buckets are looked up in an integer table computed
  once, at export time, by KerasHub's own bucketing function, so the graph
  has no `log` whose last-bit rounding could move a bucket boundary between
  runtimes;
- greedy decoding is an uncached `tf.while_loop` (loop variables a tuple,
  tokens written with `tf.where` over a one-hot position), which becomes an
  ONNX `Loop` and a TFLite `WHILE`. KerasHub's cached decode uses
  `XlaDynamicUpdateSlice`, which neither converter supports.

The math mirrors KerasHub's `T5Backbone` (`T5MultiHeadAttention`,
`T5TransformerLayer`, `T5LayerNorm`) and keras-prompt's `PromptLayer`
exactly, with dropout off (inference).
"""

import logging

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

# KerasHub adds `(1 - mask) * -1e9` to the attention scores.
_MASK_BIAS = -1e9

MODES = ("baked", "runtime", "bank")


def _gelu_erf(x):
    """Exact GELU through `erf` (tf.nn.gelu uses `erfc`, which has no ONNX
    op); equal to it within float32 rounding."""
    return 0.5 * x * (1.0 + tf.math.erf(x * float(2.0**-0.5)))


def _activation_fn(activation, portable=False):
    """Maps a Keras activation (callable or name) onto TensorFlow ops.

    `portable=True` avoids ops without an ONNX equivalent (`Erfc`)."""
    import keras

    name = activation
    if callable(activation):
        name = keras.activations.serialize(activation)
        if isinstance(name, dict):
            name = name.get("config", name.get("class_name"))
    if name == "relu":
        return tf.nn.relu
    if name == "gelu":
        if portable:
            return _gelu_erf
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name in (
        "keras_prompt>gelu_tanh",
        "gelu_new",
        "gelu_approximate",
        "keras_hub>gelu_approximate",
    ):
        return lambda x: tf.nn.gelu(x, approximate=True)
    if callable(activation):
        # Keras activations on the TensorFlow backend trace to TF ops.
        logger.info("Tracing the backbone's activation %r through Keras.", name)
        return activation
    raise ValueError(
        f"Cannot export a T5 backbone with activation {activation!r}: "
        "supported are 'relu', 'gelu' and the tanh-approximated GELU."
    )


def _bucket_table(attention_layer, bidirectional, radius):
    """Relative-position -> bucket table for positions in [-radius, radius].

    Computed with KerasHub's own bucketing function so that the exported
    graph and the Keras model agree bit for bit. Buckets are constant beyond
    `max_distance`, so clipping relative positions to +-radius is exact.
    """
    relative_positions = tf.range(-radius, radius + 1, dtype=tf.int32)
    buckets = attention_layer._relative_position_bucket(
        relative_positions,
        bidirectional=bidirectional,
        num_buckets=attention_layer.relative_attention_buckets,
        max_distance=attention_layer.relative_attention_max_distance,
    )
    return np.asarray(buckets, dtype=np.int32)


def _as_float32(variable):
    return np.asarray(
        variable.numpy() if hasattr(variable, "numpy") else variable
    ).astype(np.float32)


def extract_t5_weights(backbone):
    """Reads a KerasHub `T5Backbone` into `(config, weights)`.

    Args:
        backbone: a `keras_hub.models.T5Backbone`.

    Returns:
        `config`: dict of Python values describing the architecture;
        `weights`: dict name -> float32 numpy array.
    """
    num_heads = backbone.num_heads
    config = {
        "vocabulary_size": int(backbone.vocabulary_size),
        "hidden_dim": int(backbone.hidden_dim),
        "num_layers": int(backbone.num_layers),
        "num_heads": int(num_heads),
        "key_value_dim": int(
            backbone.key_value_dim or backbone.hidden_dim // num_heads
        ),
        "use_gated_activation": bool(backbone.use_gated_activation),
        "layer_norm_epsilon": float(backbone.layer_norm_epsilon),
        "tie_embedding_weights": bool(backbone.tie_embedding_weights),
        "activation": backbone.activation,
    }
    first_encoder = backbone.encoder_transformer_layers[0].self_attention
    first_decoder = backbone.decoder_transformer_layers[0].self_attention
    radius = int(first_encoder.relative_attention_max_distance) + 2
    config["bucket_radius"] = radius
    config["encoder_buckets"] = _bucket_table(first_encoder, True, radius)
    config["decoder_buckets"] = _bucket_table(first_decoder, False, radius)

    weights = {
        "token_embedding": _as_float32(backbone.token_embedding.embeddings)
    }
    if not config["tie_embedding_weights"]:
        weights["lm_head"] = _as_float32(
            backbone.token_embedding.reverse_embeddings
        )

    def attention(prefix, layer):
        weights[prefix + "_q"] = _as_float32(layer.query_projector.kernel)
        weights[prefix + "_k"] = _as_float32(layer.key_projector.kernel)
        weights[prefix + "_v"] = _as_float32(layer.value_projector.kernel)
        weights[prefix + "_o"] = _as_float32(layer.output_projector.kernel)

    for stack, layers in (
        ("encoder", backbone.encoder_transformer_layers),
        ("decoder", backbone.decoder_transformer_layers),
    ):
        for index, layer in enumerate(layers):
            prefix = f"{stack}_{index}"
            attention(prefix + "_self", layer.self_attention)
            weights[prefix + "_self_norm"] = _as_float32(
                layer.self_attention_layer_norm.weight
            )
            if index == 0:
                weights[stack + "_relative_bias"] = _as_float32(
                    layer.self_attention.relative_attention_bias
                )
            if stack == "decoder":
                attention(prefix + "_cross", layer.cross_attention)
                weights[prefix + "_cross_norm"] = _as_float32(
                    layer.cross_attention_layer_norm.weight
                )
            weights[prefix + "_ff_in"] = _as_float32(
                layer.input_projector.kernel
            )
            if config["use_gated_activation"]:
                weights[prefix + "_ff_gate"] = _as_float32(
                    layer.gate_projector.kernel
                )
            weights[prefix + "_ff_out"] = _as_float32(
                layer.output_projector.kernel
            )
            weights[prefix + "_ff_norm"] = _as_float32(layer.layer_norm.weight)
    weights["encoder_final_norm"] = _as_float32(
        backbone.encoder_layer_norm.weight
    )
    weights["decoder_final_norm"] = _as_float32(
        backbone.decoder_layer_norm.weight
    )
    return config, weights


class T5InferenceModule(tf.Module):
    """A frozen, prompted T5 in plain TensorFlow ops, ready to export.

    Holds copies of a `T5Backbone`'s weights and the prompt(s) as
    non-trainable `tf.Variable`s, so a SavedModel of it needs only
    TensorFlow (and tensorflow-text for the text signature) to load: no
    Keras, KerasHub or keras-prompt classes.

    Prompt modes:
    - `"baked"`: one prompt `[P, H]` frozen in the graph.
    - `"runtime"`: the caller passes `prompts` `[B, P, H]`.
    - `"bank"`: `N` prompts `[N, P, H]` frozen in; each example picks one by
      integer task id (`task_ids` `[B]`). Ids outside `[0, N)` are mapped to
      index `N`, outside the bank, so every runtime raises an out-of-bounds
      error instead of returning another task's prompt.

    Args:
        config: architecture dict from `extract_t5_weights`.
        weights: weight dict from `extract_t5_weights`.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: `[P, H]` array for `"baked"`, `[N, P, H]` for `"bank"`,
            `None` for `"runtime"`.
        prompt_length: required for `"runtime"`; otherwise read from
            `prompts`.
        end_token_id: the id that ends generation (`</s>`, 1 for T5).
        portable: use only ops that tf2onnx converts (exact GELU through
            `erf` instead of `erfc`); for ONNX export.

    Example:
    ```python
    config, weights = extract_t5_weights(model.backbone)
    module = T5InferenceModule(config, weights, mode="baked",
                               prompts=model.get_prompt())
    logits = module.forward(encoder_ids, encoder_mask, decoder_ids,
                            decoder_mask, module.prompts_for_batch(batch))
    ```
    """

    def __init__(
        self,
        config,
        weights,
        mode,
        prompts=None,
        prompt_length=None,
        end_token_id=1,
        portable=False,
        name="keras_prompt_t5",
    ):
        super().__init__(name=name)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        self.mode = mode
        self._config = dict(config)
        self.hidden_dim = config["hidden_dim"]
        self.vocabulary_size = config["vocabulary_size"]
        self.num_heads = config["num_heads"]
        self.key_value_dim = config["key_value_dim"]
        self.num_layers = config["num_layers"]
        self.end_token_id = int(end_token_id)
        self._activation = _activation_fn(config["activation"], portable)
        # numpy tables become graph constants inside each trace.
        self._encoder_buckets = np.asarray(config["encoder_buckets"], np.int32)
        self._decoder_buckets = np.asarray(config["decoder_buckets"], np.int32)
        self._bucket_radius = int(config["bucket_radius"])

        self.weights = {
            key: tf.Variable(value, trainable=False, name=key)
            for key, value in weights.items()
        }
        if mode == "baked":
            prompts = np.asarray(prompts, np.float32)
            if prompts.ndim != 2:
                raise ValueError(
                    f"A baked prompt must be [prompt_length, hidden_dim]; got "
                    f"shape {prompts.shape}."
                )
            self.prompt_length = int(prompts.shape[0])
            self.num_tasks = 1
            self.prompt = tf.Variable(prompts, trainable=False, name="prompt")
        elif mode == "bank":
            prompts = np.asarray(prompts, np.float32)
            if prompts.ndim != 3 or prompts.shape[0] < 1:
                raise ValueError(
                    "A prompt bank must be [num_tasks, prompt_length, "
                    f"hidden_dim] with num_tasks >= 1; got shape {prompts.shape}."
                )
            self.prompt_length = int(prompts.shape[1])
            self.num_tasks = int(prompts.shape[0])
            self.prompt_bank = tf.Variable(
                prompts, trainable=False, name="prompt_bank"
            )
        else:
            if prompt_length is None:
                raise ValueError("mode='runtime' needs `prompt_length`.")
            self.prompt_length = int(prompt_length)
            self.num_tasks = 0
        prompt_hidden = (
            self.hidden_dim if mode == "runtime" else int(prompts.shape[-1])
        )
        if prompt_hidden != self.hidden_dim:
            raise ValueError(
                f"The prompt's hidden_dim is {prompt_hidden} but the backbone's "
                f"is {self.hidden_dim}."
            )

    # ------------------------------------------------------------------ #
    # Prompt selection.
    # ------------------------------------------------------------------ #
    def baked_prompts(self, batch_size):
        """The baked prompt broadcast to `[batch_size, P, H]`."""
        return tf.broadcast_to(
            tf.expand_dims(self.prompt, 0),
            tf.stack([batch_size, self.prompt_length, self.hidden_dim]),
        )

    def bank_prompts(self, task_ids):
        """Gathers each example's prompt from the bank by integer id.

        Out-of-range (including negative) ids are sent to index `num_tasks`,
        which is out of bounds in every runtime, so they fail loudly.
        """
        task_ids = tf.cast(task_ids, tf.int32)
        valid = tf.logical_and(task_ids >= 0, task_ids < self.num_tasks)
        safe_ids = tf.where(
            valid, task_ids, tf.fill(tf.shape(task_ids), self.num_tasks)
        )
        return tf.gather(self.prompt_bank, safe_ids)

    # ------------------------------------------------------------------ #
    # Building blocks.
    # ------------------------------------------------------------------ #
    def _w(self, key):
        return self.weights[key]

    def _layer_norm(self, x, key):
        variance = tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
        x = x * tf.math.rsqrt(variance + self._config["layer_norm_epsilon"])
        return self._w(key) * x

    def _dense(self, x, key):
        return tf.matmul(x, self._w(key))

    def _split_heads(self, x):
        # [B, T, n*d] -> [B, n, T, d]
        # No -1 in the shape: ONNX Runtime cannot infer it when batch is 0.
        shape = tf.shape(x)
        x = tf.reshape(
            x,
            tf.stack([shape[0], shape[1], self.num_heads, self.key_value_dim]),
        )
        return tf.transpose(x, [0, 2, 1, 3])

    def _project_key_values(self, key_value_states, prefix):
        keys = self._split_heads(self._dense(key_value_states, prefix + "_k"))
        values = self._split_heads(self._dense(key_value_states, prefix + "_v"))
        return keys, values

    def _attention(self, x, prefix, bias, key_values=None):
        """T5 attention (no score scaling). `bias` includes the mask."""
        batch = tf.shape(x)[0]
        queries = self._split_heads(self._dense(x, prefix + "_q"))
        if key_values is None:
            key_values = self._project_key_values(x, prefix)
        keys, values = key_values
        scores = tf.matmul(queries, keys, transpose_b=True)  # [B, n, q, k]
        scores = scores + bias
        weights = tf.nn.softmax(scores, axis=-1)
        output = tf.matmul(weights, values)  # [B, n, q, d]
        output = tf.transpose(output, [0, 2, 1, 3])
        output = tf.reshape(
            output,
            tf.stack(
                [batch, tf.shape(x)[1], self.num_heads * self.key_value_dim]
            ),
        )
        return self._dense(output, prefix + "_o")

    def _feed_forward(self, x, prefix):
        residual = x
        x = self._layer_norm(x, prefix + "_ff_norm")
        hidden = self._activation(self._dense(x, prefix + "_ff_in"))
        if self._config["use_gated_activation"]:
            hidden = hidden * self._dense(x, prefix + "_ff_gate")
        return residual + self._dense(hidden, prefix + "_ff_out")

    def _position_bias(self, stack, query_length, key_length):
        """`[1, num_heads, query_length, key_length]` relative bias."""
        table = (
            self._encoder_buckets
            if stack == "encoder"
            else self._decoder_buckets
        )
        radius = self._bucket_radius
        context = tf.expand_dims(tf.range(query_length), 1)
        memory = tf.expand_dims(tf.range(key_length), 0)
        relative = tf.clip_by_value(memory - context, -radius, radius) + radius
        buckets = tf.gather(tf.constant(table), relative)
        values = tf.gather(self._w(stack + "_relative_bias"), buckets)
        return tf.expand_dims(tf.transpose(values, [2, 0, 1]), 0)

    @staticmethod
    def _mask_bias(mask):
        """`[B, K]` 0/1 mask -> `[B, 1, 1, K]` additive bias."""
        mask = tf.cast(mask, tf.float32)
        bias = (1.0 - mask) * _MASK_BIAS
        return tf.expand_dims(tf.expand_dims(bias, 1), 1)

    # ------------------------------------------------------------------ #
    # Encoder / decoder.
    # ------------------------------------------------------------------ #
    def encode(self, token_ids, padding_mask, prompts):
        """Prompted encoder.

        Args:
            token_ids: int `[B, S]`.
            padding_mask: int/bool `[B, S]`.
            prompts: float32 `[B, P, H]`.

        Returns:
            `(encoder_outputs [B, P+S, H], encoder_mask int32 [B, P+S])`.
        """
        token_ids = tf.cast(token_ids, tf.int32)
        padding_mask = tf.cast(padding_mask, tf.int32)
        batch = tf.shape(token_ids)[0]
        x = tf.gather(self._w("token_embedding"), token_ids)
        x = tf.concat([tf.cast(prompts, tf.float32), x], axis=1)
        mask = tf.concat(
            [
                tf.ones(tf.stack([batch, self.prompt_length]), tf.int32),
                padding_mask,
            ],
            axis=1,
        )
        length = tf.shape(mask)[1]
        bias = self._position_bias("encoder", length, length) + self._mask_bias(
            mask
        )
        for index in range(self.num_layers):
            prefix = f"encoder_{index}"
            residual = x
            h = self._layer_norm(x, prefix + "_self_norm")
            x = residual + self._attention(h, prefix + "_self", bias)
            x = self._feed_forward(x, prefix)
        x = self._layer_norm(x, "encoder_final_norm")
        return x, mask

    def cross_attention_key_values(self, encoder_outputs):
        """Per-decoder-layer cross-attention keys/values (computed once)."""
        return [
            self._project_key_values(encoder_outputs, f"decoder_{index}_cross")
            for index in range(self.num_layers)
        ]

    def decode(
        self,
        decoder_token_ids,
        decoder_padding_mask,
        encoder_mask,
        cross_key_values,
    ):
        """Decoder + LM head -> logits `[B, T, V]`."""
        decoder_token_ids = tf.cast(decoder_token_ids, tf.int32)
        x = tf.gather(self._w("token_embedding"), decoder_token_ids)
        length = tf.shape(decoder_token_ids)[1]
        causal = tf.expand_dims(tf.range(length), 1) >= tf.expand_dims(
            tf.range(length), 0
        )  # [T, T]
        self_mask = tf.logical_and(
            tf.expand_dims(causal, 0),
            tf.expand_dims(tf.cast(decoder_padding_mask, tf.bool), 1),
        )  # [B, T, T]
        self_bias = (
            1.0 - tf.cast(tf.expand_dims(self_mask, 1), tf.float32)
        ) * _MASK_BIAS
        self_bias = self._position_bias("decoder", length, length) + self_bias
        cross_bias = self._mask_bias(encoder_mask)
        for index in range(self.num_layers):
            prefix = f"decoder_{index}"
            residual = x
            h = self._layer_norm(x, prefix + "_self_norm")
            x = residual + self._attention(h, prefix + "_self", self_bias)
            residual = x
            h = self._layer_norm(x, prefix + "_cross_norm")
            x = residual + self._attention(
                h,
                prefix + "_cross",
                cross_bias,
                key_values=cross_key_values[index],
            )
            x = self._feed_forward(x, prefix)
        x = self._layer_norm(x, "decoder_final_norm")
        return self.logits_from_hidden(x)

    def logits_from_hidden(self, hidden):
        if self._config["tie_embedding_weights"]:
            hidden = hidden * float(self.hidden_dim**-0.5)
            return tf.matmul(
                hidden, self._w("token_embedding"), transpose_b=True
            )
        return tf.matmul(hidden, self._w("lm_head"))

    def forward(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        decoder_token_ids,
        decoder_padding_mask,
        prompts,
    ):
        """Teacher-forced forward pass -> logits float32 `[B, T, V]`."""
        encoder_outputs, encoder_mask = self.encode(
            encoder_token_ids, encoder_padding_mask, prompts
        )
        return self.decode(
            decoder_token_ids,
            decoder_padding_mask,
            encoder_mask,
            self.cross_attention_key_values(encoder_outputs),
        )

    def greedy_generate(
        self, encoder_token_ids, encoder_padding_mask, prompts, max_length
    ):
        """Greedy decoding -> token ids int32 `[B, max_length]`.

        Column 0 is the decoder start token (0), as in KerasHub's
        `generate()`. Each row stops at its first `</s>` (kept); every later
        position is 0 (pad). The loop ends when every row has stopped or
        `max_length` is reached.
        """
        max_length = int(max_length)
        encoder_outputs, encoder_mask = self.encode(
            encoder_token_ids, encoder_padding_mask, prompts
        )
        cross_key_values = self.cross_attention_key_values(encoder_outputs)
        batch = tf.shape(encoder_outputs)[0]
        tokens = tf.zeros(tf.stack([batch, max_length]), tf.int32)
        decoder_mask = tf.ones(tf.stack([batch, max_length]), tf.int32)
        finished = tf.zeros(tf.stack([batch]), tf.bool)
        positions = tf.range(max_length)
        end_token_id = self.end_token_id

        def cond(index, tokens, finished):
            return tf.logical_and(
                index < max_length,
                tf.logical_not(tf.reduce_all(finished)),
            )

        def body(index, tokens, finished):
            logits = self.decode(
                tokens, decoder_mask, encoder_mask, cross_key_values
            )
            step_logits = tf.gather(logits, index - 1, axis=1)  # [B, V]
            # KerasHub's greedy sampler takes the argmax of the softmax.
            probabilities = tf.nn.softmax(step_logits, axis=-1)
            next_token = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            next_token = tf.where(
                finished, tf.zeros_like(next_token), next_token
            )
            write = tf.expand_dims(tf.equal(positions, index), 0)
            tokens = tf.where(write, tf.expand_dims(next_token, 1), tokens)
            finished = tf.logical_or(
                finished, tf.equal(next_token, end_token_id)
            )
            return (index + 1, tokens, finished)

        _, tokens, _ = tf.while_loop(
            cond,
            body,
            (tf.constant(1, tf.int32), tokens, finished),
        )
        return tokens
