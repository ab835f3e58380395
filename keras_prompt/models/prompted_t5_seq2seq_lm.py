import logging

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.python.framework.config import is_op_determinism_enabled

from keras_prompt import initializers
from keras_prompt.layers.prompt_layer import PromptLayer
from keras_prompt.models.presets import load_backbone_and_preprocessor
from keras_prompt.prompts import prompt_file

logger = logging.getLogger(__name__)

# T5 starts decoding from the padding id and has no separate start token.
DECODER_START_ID = 0
PAD_ID = 0
# T5 vocabularies put `</s>` at id 1.
T5_END_ID = 1


@keras.saving.register_keras_serializable(package="keras_prompt")
class PromptedT5Seq2SeqLM(keras_hub.models.T5Seq2SeqLM):
    """A frozen T5 steered by a trainable soft prompt (prompt tuning).

    Wraps a `keras_hub.models.T5Backbone`, freezes every one of its weights,
    and prepends `prompt_length` free vectors to the embedded encoder input
    (Lester, Al-Rfou & Constant, 2021). Only those vectors train: the model's
    `trainable_weights` is exactly `[prompt]`.

    The model takes KerasHub's inputs (`encoder_token_ids`,
    `encoder_padding_mask`, `decoder_token_ids`, `decoder_padding_mask`),
    plus an optional `prompts` tensor of shape
    `[batch, prompt_length, hidden_dim]` that gives each example its own
    prompt, so one batch can mix tasks. It returns float32 logits
    `[batch, decoder_length, vocabulary_size]`, following the backbone's
    head rule (a tied head scales by `hidden_dim ** -0.5` first).

    `generate()` decodes with the prompt using KerasHub's cached decoding
    (greedy by default, XLA-compiled), and `score()` ranks candidate targets
    by log-likelihood (rank classification).

    Args:
        backbone: a `keras_hub.models.T5Backbone`. It is frozen in place.
        preprocessor: a `keras_hub.models.T5Seq2SeqLMPreprocessor` or `None`.
            Needed for string inputs and for initializers built from words.
        prompt_length: int. Number of prompt vectors (the paper's default is
            100).
        prompt_initializer: `"random_uniform"` (the default, uniform in
            `[-0.5, 0.5]`), `"sampled_vocab"`, `"class_labels"` (needs
            `labels`), `"text"` (needs `init_text`), a
            `[prompt_length, hidden_dim]` array, or a Keras initializer.
        labels: optional list of the task's label words; used by the
            `"class_labels"` initializer and recorded in saved prompts.
        init_text: optional string for the `"text"` initializer.
        seed: optional int seed for the prompt initializer.
        **kwargs: passed to `keras_hub.models.Task` (e.g. `compile=False`).

    Example:
    ```python
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=128, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(backbone, prompt_length=4)
    x = {
        "encoder_token_ids": np.array([[5, 6, 7, 1]]),
        "encoder_padding_mask": np.array([[1, 1, 1, 1]]),
        "decoder_token_ids": np.array([[0, 8, 9]]),
        "decoder_padding_mask": np.array([[1, 1, 1]]),
    }
    y = np.array([[8, 9, 1]])
    model.fit(x, y, epochs=2, verbose=0)
    model.generate(x, stop_token_ids=None)
    ```
    """

    def __init__(
        self,
        backbone,
        preprocessor=None,
        prompt_length=100,
        prompt_initializer="random_uniform",
        labels=None,
        init_text=None,
        seed=None,
        **kwargs,
    ):
        if not isinstance(backbone, keras_hub.models.T5Backbone):
            raise TypeError(
                "`backbone` must be a `keras_hub.models.T5Backbone`; got "
                f"{type(backbone).__name__}. Load one with "
                "`PromptedT5Seq2SeqLM.from_preset(...)`."
            )
        # === Layers ===
        backbone.trainable = False
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.prompt_initializer = prompt_initializer
        self.labels = list(labels) if labels is not None else None
        self.init_text = init_text
        self.seed = seed
        tokenizer = preprocessor.tokenizer if preprocessor is not None else None
        initializer = initializers.get(
            prompt_initializer,
            embeddings=ops.convert_to_numpy(
                backbone.token_embedding.embeddings
            ),
            tokenizer=tokenizer,
            labels=labels,
            text=init_text,
            seed=seed,
        )
        self.prompt_layer = PromptLayer(
            prompt_length=prompt_length,
            hidden_dim=backbone.hidden_dim,
            initializer=initializer,
            dtype=backbone.dtype_policy,
            name="prompt",
        )
        self.prompt_layer.build()

        # === Functional Model ===
        # Functional like every KerasHub task (KerasHub swaps `Functional`
        # into the shared base class whenever any task is built, so a
        # subclassed task would break as soon as another model is created).
        # `prompts` is optional: without it the layer's own prompt is used.
        inputs = {
            "encoder_token_ids": keras.Input(
                (None,), dtype="int32", name="encoder_token_ids"
            ),
            "encoder_padding_mask": keras.Input(
                (None,), dtype="int32", name="encoder_padding_mask"
            ),
            "decoder_token_ids": keras.Input(
                (None,), dtype="int32", name="decoder_token_ids"
            ),
            "decoder_padding_mask": keras.Input(
                (None,), dtype="int32", name="decoder_padding_mask"
            ),
            "prompts": keras.Input(
                (prompt_length, backbone.hidden_dim),
                dtype="float32",
                name="prompts",
                optional=True,
            ),
        }
        encoder_outputs, encoder_padding_mask = self.encode(
            inputs["encoder_token_ids"],
            inputs["encoder_padding_mask"],
            prompts=inputs["prompts"],
        )
        logits = self.decode(
            encoder_outputs,
            encoder_padding_mask,
            inputs["decoder_token_ids"],
            inputs["decoder_padding_mask"],
        )
        keras_hub.models.Seq2SeqLM.__init__(
            self, inputs=inputs, outputs=logits, **kwargs
        )

        # KerasHub only creates this in `compile()`; `compile=False` must
        # still allow `generate()`.
        if not hasattr(self, "generate_function"):
            self.generate_function = None
            self.sampler = keras_hub.samplers.GreedySampler()

        # === Config ===
        self.prompt_length = self.prompt_layer.prompt_length
        self.hidden_dim = backbone.hidden_dim

    _REQUIRED_INPUTS = (
        "encoder_token_ids",
        "encoder_padding_mask",
        "decoder_token_ids",
        "decoder_padding_mask",
    )

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._standardize_inputs(inputs), *args, **kwargs)

    def _standardize_inputs(self, inputs):
        """Checks the input keys (Keras would name the wrong one) and fills
        in the optional `prompts`."""
        if not isinstance(inputs, dict):
            raise ValueError(
                "PromptedT5Seq2SeqLM takes a dict of token inputs with keys "
                f"{list(self._REQUIRED_INPUTS)} (and optionally 'prompts'); "
                f"got {type(inputs).__name__}. Use `generate()` for text."
            )
        missing = [key for key in self._REQUIRED_INPUTS if key not in inputs]
        unknown = sorted(set(inputs) - set(self._REQUIRED_INPUTS) - {"prompts"})
        if missing or unknown:
            raise ValueError(
                f"Model inputs are missing {missing} and have unknown keys "
                f"{unknown}; expected {list(self._REQUIRED_INPUTS)} and "
                "optionally 'prompts'."
            )
        inputs = dict(inputs)
        inputs.setdefault("prompts", None)
        return inputs

    # === Forward pass ===

    def encode(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        prompts=None,
        training=None,
    ):
        """Runs the frozen encoder on `prompt ++ embed(tokens)`.

        Args:
            encoder_token_ids: int tensor `[batch, length]`.
            encoder_padding_mask: int or bool tensor `[batch, length]`.
            prompts: optional per-example prompts
                `[batch, prompt_length, hidden_dim]`.
            training: whether dropout is active.

        Returns:
            `(encoder_outputs, padding_mask)`: `[batch, prompt_length +
            length, hidden_dim]` and the extended int32 mask.
        """
        backbone = self.backbone
        padding_mask = ops.cast(encoder_padding_mask, "int32")
        x = backbone.token_embedding(encoder_token_ids)
        x, padding_mask = self.prompt_layer(x, padding_mask, prompt=prompts)
        x = backbone.encoder_embedding_dropout(x, training=training)
        attention_mask = padding_mask[:, None, :]
        position_bias = None
        for layer in backbone.encoder_transformer_layers:
            x, position_bias = layer(
                x,
                attention_mask=attention_mask,
                position_bias=position_bias,
                use_causal_mask=False,
                training=training,
            )
        x = backbone.encoder_layer_norm(x)
        x = backbone.encoder_dropout(x, training=training)
        return x, padding_mask

    def decode(
        self,
        encoder_outputs,
        encoder_padding_mask,
        decoder_token_ids,
        decoder_padding_mask,
        training=None,
    ):
        """Runs the frozen decoder and head; returns float32 logits.

        `encoder_padding_mask` is the extended mask returned by `encode()`.
        """
        backbone = self.backbone
        x = backbone.token_embedding(decoder_token_ids)
        x = backbone.decoder_embedding_dropout(x, training=training)
        decoder_attention_mask = ops.cast(decoder_padding_mask, "int32")[
            :, None, :
        ]
        encoder_attention_mask = ops.cast(encoder_padding_mask, "int32")[
            :, None, :
        ]
        position_bias = None
        for layer in backbone.decoder_transformer_layers:
            x, position_bias = layer(
                x,
                attention_mask=decoder_attention_mask,
                position_bias=position_bias,
                encoder_hidden_states=encoder_outputs,
                encoder_attention_mask=encoder_attention_mask,
                use_causal_mask=True,
                training=training,
            )
        x = backbone.decoder_layer_norm(x)
        x = backbone.decoder_dropout(x, training=training)
        return self.logits_from_hidden(x)

    def logits_from_hidden(self, hidden_states):
        """Projects decoder states onto the vocabulary with the backbone's
        head rule, returning float32 logits."""
        if self.backbone.tie_embedding_weights:
            # A Python float, not a captured tensor: exported graphs (ONNX)
            # must not depend on eager constants.
            hidden_states = hidden_states * float(self.backbone.hidden_dim**-0.5)
        logits = self.backbone.token_embedding(hidden_states, reverse=True)
        return ops.cast(logits, "float32")

    # KerasHub's cached decoding (`call_decoder_with_cache`) uses `_logits`.
    _logits = logits_from_hidden

    def call_encoder(self, token_ids, padding_mask):
        """KerasHub's encoder hook: the prompted encoder output."""
        return self.encode(token_ids, padding_mask)[0]

    # === Training ===

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        weighted_metrics="auto",
        sampler="greedy",
        **kwargs,
    ):
        """Configures training with the paper's defaults.

        Args:
            optimizer: `"auto"` gives `keras_prompt.optimizers.Adafactor` at
                the paper's constant learning rate 0.3.
            loss: `"auto"` gives sparse cross-entropy from logits over target
                tokens only (padding id 0 is ignored, the mean is over real
                target tokens).
            weighted_metrics: `"auto"` gives token accuracy.
            sampler: the `generate()` sampler; greedy by default.
            **kwargs: see `keras.Model.compile` (e.g. `steps_per_execution`).
                `jit_compile` defaults to `True` (Keras's `"auto"` turns XLA
                off on CPU-only machines, where it still makes training and
                cached generation several times faster), except when running
                eagerly or with TensorFlow op determinism enabled.
        """
        if "jit_compile" not in kwargs:
            kwargs["jit_compile"] = not kwargs.get(
                "run_eagerly"
            ) and not is_op_determinism_enabled()
        if optimizer == "auto":
            from keras_prompt.optimizers import Adafactor

            optimizer = Adafactor(learning_rate=0.3)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=PAD_ID
            )
        if weighted_metrics == "auto":
            weighted_metrics = [
                keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")
            ]
        super().compile(
            optimizer=optimizer,
            loss=loss,
            weighted_metrics=weighted_metrics,
            sampler=sampler,
            **kwargs,
        )
        self._score_function = None

    # === Generation ===

    def generate_step(self, inputs, stop_token_ids=None):
        """Generates a batch with cached decoding and the prompt.

        KerasHub's `T5Seq2SeqLM.generate_step` semantics (same sampler, same
        cache positions, same masks and position biases), with the encoder
        seeing the prompt, so cross-attention spans `prompt_length + length`
        positions. `inputs` may carry per-example `"prompts"`.

        For speed the caches are kept per layer in the layout the attention
        matmuls read (`[batch, heads, length, head_dim]`): the
        cross-attention keys/values are projected once, and a decoding step
        neither slices nor re-stacks the caches of all layers (KerasHub's
        single `[batch, layers, 2, length, heads, head_dim]` tensors cost
        a copy of every layer's cache per layer and step).
        """
        decoder_token_ids = inputs["decoder_token_ids"]
        decoder_padding_mask = inputs["decoder_padding_mask"]
        encoder_outputs, encoder_padding_mask = self.encode(
            inputs["encoder_token_ids"],
            inputs["encoder_padding_mask"],
            prompts=inputs.get("prompts"),
        )
        cross_keys, cross_values = self._cross_attention_key_values(
            encoder_outputs
        )
        # KerasHub adds `(1 - mask) * -1e9` to the cross-attention scores.
        cross_bias = (
            1.0 - ops.cast(encoder_padding_mask, encoder_outputs.dtype)
        )[:, None, None, :] * -1e9
        self_keys, self_values = self._empty_self_attention_cache(
            decoder_token_ids
        )
        # Seed the self-attention cache with the whole decoder input, as
        # KerasHub does (positions not yet generated are overwritten later).
        _, hidden_states, self_keys, self_values = self._decode_with_cache(
            decoder_token_ids, 0, self_keys, self_values,
            cross_keys, cross_values, cross_bias,
        )
        row_lengths = ops.sum(ops.cast(decoder_padding_mask, "int32"), axis=-1)

        def next_token(prompt, cache, index):
            cache_index = index - 1
            previous = ops.slice(
                prompt, [0, cache_index], [ops.shape(prompt)[0], 1]
            )
            self_keys, self_values, cross_keys, cross_values, cross_bias = cache
            logits, hidden_states, self_keys, self_values = (
                self._decode_with_cache(
                    previous, cache_index, self_keys, self_values,
                    cross_keys, cross_values, cross_bias,
                )
            )
            cache = (self_keys, self_values, cross_keys, cross_values, cross_bias)
            return (
                ops.squeeze(logits, axis=1),
                ops.squeeze(hidden_states, axis=1),
                cache,
            )

        decoder_token_ids = self.sampler(
            next=next_token,
            prompt=decoder_token_ids,
            cache=(self_keys, self_values, cross_keys, cross_values, cross_bias),
            index=ops.min(row_lengths),
            mask=decoder_padding_mask,
            stop_token_ids=stop_token_ids,
            hidden_states=hidden_states,
            model=self,
        )
        return {
            "decoder_token_ids": decoder_token_ids,
            "decoder_padding_mask": _mask_after_stop(
                decoder_token_ids, decoder_padding_mask, stop_token_ids
            ),
        }

    @staticmethod
    def _split_heads(x, attention):
        """`[batch, length, heads * head_dim]` -> `[batch, heads, length,
        head_dim]`."""
        x = ops.reshape(
            x,
            (ops.shape(x)[0], -1, attention.num_heads, attention.key_value_dim),
        )
        return ops.transpose(x, (0, 2, 1, 3))

    @staticmethod
    def _attend(query, keys, values, bias, attention):
        """T5 attention (unscaled scores) on split heads; `bias` holds the
        position bias and the mask."""
        scores = ops.matmul(query, ops.swapaxes(keys, -1, -2)) + bias
        weights = ops.softmax(scores, axis=-1)
        output = ops.transpose(ops.matmul(weights, values), (0, 2, 1, 3))
        output = ops.reshape(
            output, (ops.shape(output)[0], -1, attention.inner_dim)
        )
        return attention.output_projector(output)

    def _cross_attention_key_values(self, encoder_outputs):
        keys, values = [], []
        for layer in self.backbone.decoder_transformer_layers:
            attention = layer.cross_attention
            keys.append(
                self._split_heads(attention.key_projector(encoder_outputs), attention)
            )
            values.append(
                self._split_heads(
                    attention.value_projector(encoder_outputs), attention
                )
            )
        return tuple(keys), tuple(values)

    def _empty_self_attention_cache(self, decoder_token_ids):
        backbone = self.backbone
        head_dim = backbone.key_value_dim or (
            backbone.hidden_dim // backbone.num_heads
        )
        shape = (
            ops.shape(decoder_token_ids)[0],
            backbone.num_heads,
            ops.shape(decoder_token_ids)[1],
            head_dim,
        )
        empty = tuple(
            ops.zeros(shape, dtype=self.compute_dtype)
            for _ in range(backbone.num_layers)
        )
        return empty, empty

    def _decode_with_cache(
        self,
        token_ids,
        start,
        self_keys,
        self_values,
        cross_keys,
        cross_values,
        cross_bias,
    ):
        """Runs the decoder on `token_ids` (`[batch, q]`, positions `start`
        to `start + q - 1`) against the caches (inference: no dropout).

        Returns `(logits, hidden_states, self_keys, self_values)` with the
        self-attention caches updated at those positions.
        """
        backbone = self.backbone
        layers = backbone.decoder_transformer_layers
        x = backbone.token_embedding(token_ids)
        query_length = ops.shape(token_ids)[1]
        cache_length = ops.shape(self_keys[0])[2]
        # The first layer's relative position bias plus the causal mask
        # (key position <= query position), shared by all layers.
        bias = layers[0].self_attention.compute_bias(
            query_length, cache_length, query_start_index=start
        )
        causal = ops.less_equal(
            ops.arange(cache_length)[None, :],
            ops.arange(query_length)[:, None] + start,
        )
        bias = bias + (1.0 - ops.cast(causal, bias.dtype))[None, None] * -1e9
        new_keys, new_values = [], []
        for index, layer in enumerate(layers):
            attention = layer.self_attention
            h = layer.self_attention_layer_norm(x)
            query = self._split_heads(attention.query_projector(h), attention)
            keys = ops.slice_update(
                self_keys[index],
                [0, 0, start, 0],
                self._split_heads(attention.key_projector(h), attention),
            )
            values = ops.slice_update(
                self_values[index],
                [0, 0, start, 0],
                self._split_heads(attention.value_projector(h), attention),
            )
            new_keys.append(keys)
            new_values.append(values)
            x = x + self._attend(query, keys, values, bias, attention)

            attention = layer.cross_attention
            h = layer.cross_attention_layer_norm(x)
            query = self._split_heads(attention.query_projector(h), attention)
            x = x + self._attend(
                query, cross_keys[index], cross_values[index], cross_bias,
                attention,
            )

            h = layer.layer_norm(x)
            if layer.use_gated_activation:
                h = layer.input_projector(h) * layer.gate_projector(h)
            else:
                h = layer.input_projector(h)
            x = x + layer.output_projector(h)
        x = backbone.decoder_layer_norm(x)
        return self._logits(x), x, tuple(new_keys), tuple(new_values)

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        prompts=None,
    ):
        """Generates with the prompt, greedy by default (KerasHub's cached
        decoding, XLA-compiled unless `jit_compile=False`).

        Args:
            inputs: a string or list of strings (needs a preprocessor; the
                output is text), or a dict of token inputs with
                `encoder_token_ids` and `encoder_padding_mask` (the output
                is a dict with `decoder_token_ids` and
                `decoder_padding_mask`, whatever the preprocessor). A token
                dict may carry `decoder_token_ids`/`decoder_padding_mask` as
                a decoder prefix and `prompts`. A `tf.data.Dataset` of either
                is generated batch by batch.
            max_length: decoder length (the start token included); defaults
                to the preprocessor's `decoder_sequence_length`.
            stop_token_ids: `"auto"` (the tokenizer's end token, T5's
                `</s>` = 1 without a tokenizer), `None`, or a tuple of ids.
            strip_prompt: see KerasHub's `Seq2SeqLM.generate`.
            prompts: optional per-example prompts
                `[batch, prompt_length, hidden_dim]` for a mixed-task batch
                (a single batch, not a dataset).
        """
        if isinstance(inputs, dict) and "encoder_token_ids" in inputs:
            return self._generate_tokens(
                inputs, max_length, stop_token_ids, prompts
            )
        if prompts is None:
            return super().generate(
                inputs, max_length, stop_token_ids, strip_prompt
            )
        if isinstance(inputs, tf.data.Dataset):
            raise ValueError(
                "Per-example `prompts` need a single batch of inputs, not a "
                "`tf.data.Dataset`; put them in each batch as "
                "`inputs['prompts']` instead."
            )
        prompts = self._check_prompts(prompts)
        compiled = self.make_generate_function()

        def generate_with_prompts(batch, stop_token_ids=None):
            return compiled({**batch, "prompts": prompts}, stop_token_ids)

        # `Seq2SeqLM.generate` preprocesses and postprocesses around
        # `self.generate_function`; routing the prompts through it keeps
        # KerasHub's string handling.
        self.generate_function = generate_with_prompts
        try:
            return super().generate(
                inputs, max_length, stop_token_ids, strip_prompt
            )
        finally:
            self.generate_function = compiled

    def _generate_tokens(self, inputs, max_length, stop_token_ids, prompts):
        inputs = {key: ops.convert_to_tensor(value) for key, value in inputs.items()}
        if prompts is not None:
            inputs["prompts"] = self._check_prompts(prompts)
        if "decoder_token_ids" not in inputs:
            if max_length is None:
                if self.preprocessor is None:
                    raise ValueError(
                        "Token inputs without `decoder_token_ids` need "
                        "`max_length` (or a preprocessor)."
                    )
                max_length = self.preprocessor.decoder_sequence_length
            batch_size = ops.shape(inputs["encoder_token_ids"])[0]
            inputs["decoder_token_ids"] = ops.full(
                (batch_size, max_length), DECODER_START_ID, "int32"
            )
            inputs["decoder_padding_mask"] = ops.tile(
                ops.one_hot([0], max_length, dtype="int32"), (batch_size, 1)
            )
        if stop_token_ids == "auto":
            stop_token_ids = (
                (self.preprocessor.tokenizer.end_token_id,)
                if self.preprocessor is not None
                else (T5_END_ID,)
            )
        outputs = self.make_generate_function()(
            inputs, stop_token_ids=stop_token_ids
        )
        return {key: ops.convert_to_numpy(value) for key, value in outputs.items()}

    def _check_prompts(self, prompts):
        prompts = ops.convert_to_tensor(prompts, "float32")
        self.prompt_layer._check_prompt_shape(prompts)
        return prompts

    # === Rank classification ===

    def score(self, inputs, choices, prompts=None):
        """Log-likelihood of each candidate target (rank classification).

        The encoder runs once per batch; all choices are decoded together in
        one compiled function.

        Args:
            inputs: a string or list of strings (needs a preprocessor), or a
                dict with `encoder_token_ids` and `encoder_padding_mask`.
            choices: list of candidate target strings (needs a
                preprocessor; the end token is appended and scored), or of
                token-id lists (scored as given; include the end token id to
                score it).
            prompts: optional per-example prompts.

        Returns:
            float32 array `[batch, len(choices)]`: the summed log-probability
            of each choice's target tokens. `argmax` over the last axis is
            the rank-classification prediction.

        Example:
        ```python
        scores = model.score(["sst2 sentence: a great film"],
                             ["positive", "negative"])
        ```
        """
        if not choices:
            raise ValueError("`score()` needs at least one choice.")
        encoder_inputs = self._encoder_inputs(inputs)
        decoder_ids, targets, target_mask = self._choice_tensors(choices)
        if prompts is not None:
            prompts = self._check_prompts(prompts)
        if getattr(self, "_score_function", None) is None:
            self._score_function = tf.function(
                self._score_batch, jit_compile=self.jit_compile
            )
        scores = self._score_function(
            encoder_inputs["encoder_token_ids"],
            encoder_inputs["encoder_padding_mask"],
            decoder_ids,
            targets,
            target_mask,
            prompts,
        )
        return ops.convert_to_numpy(scores)

    def _score_batch(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        decoder_ids,
        targets,
        target_mask,
        prompts=None,
    ):
        """`[batch, num_choices]` summed target log-probabilities."""
        encoder_outputs, encoder_padding_mask = self.encode(
            encoder_token_ids, encoder_padding_mask, prompts=prompts
        )
        batch_size = ops.shape(encoder_token_ids)[0]
        num_choices = ops.shape(decoder_ids)[0]
        # Row b * num_choices + c pairs example b with choice c.
        logits = self.decode(
            ops.repeat(encoder_outputs, num_choices, axis=0),
            ops.repeat(encoder_padding_mask, num_choices, axis=0),
            ops.tile(decoder_ids, (batch_size, 1)),
            ops.tile(target_mask, (batch_size, 1)),
        )
        log_probs = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(
            log_probs, ops.tile(targets, (batch_size, 1))[..., None], axis=-1
        )[..., 0]
        mask = ops.cast(ops.tile(target_mask, (batch_size, 1)), picked.dtype)
        return ops.reshape(
            ops.sum(picked * mask, axis=-1), (batch_size, num_choices)
        )

    def _encoder_inputs(self, inputs):
        if isinstance(inputs, dict):
            return {
                key: ops.convert_to_tensor(inputs[key], "int32")
                for key in ("encoder_token_ids", "encoder_padding_mask")
            }
        if self.preprocessor is None:
            raise ValueError(
                "String inputs need a preprocessor: build the model with "
                "`preprocessor=` or `from_preset()`, or pass token ids."
            )
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        packed = self.preprocessor.generate_preprocess(texts)
        return {
            key: ops.cast(packed[key], "int32")
            for key in ("encoder_token_ids", "encoder_padding_mask")
        }

    def _choice_tensors(self, choices):
        """`(decoder_input_ids, target_ids, target_mask)`, each
        `int32[num_choices, longest]`, right-padded."""
        targets = []
        for choice in choices:
            if isinstance(choice, str):
                if self.preprocessor is None:
                    raise ValueError(
                        "String choices need a preprocessor; pass token-id "
                        "lists instead."
                    )
                tokenizer = self.preprocessor.tokenizer
                target = [int(i) for i in np.asarray(tokenizer(choice))]
                target.append(tokenizer.end_token_id)
            else:
                target = [int(i) for i in choice]
            if not target:
                raise ValueError(f"Choice {choice!r} has no tokens.")
            targets.append(target)
        length = max(len(target) for target in targets)
        target_ids = np.full((len(targets), length), PAD_ID, "int32")
        target_mask = np.zeros((len(targets), length), "int32")
        for row, target in enumerate(targets):
            target_ids[row, : len(target)] = target
            target_mask[row, : len(target)] = 1
        decoder_ids = np.concatenate(
            [np.full((len(targets), 1), DECODER_START_ID, "int32"), target_ids[:, :-1]],
            axis=1,
        )
        return decoder_ids, target_ids, target_mask

    # === Prompt access and files ===

    def get_prompt(self):
        """The prompt as a float32 NumPy array `[prompt_length, hidden_dim]`."""
        return ops.convert_to_numpy(self.prompt_layer.prompt).copy()

    def set_prompt(self, prompt):
        """Replaces the prompt with `prompt` (`[prompt_length, hidden_dim]`)."""
        prompt = np.asarray(prompt, dtype="float32")
        expected = (self.prompt_length, self.hidden_dim)
        if prompt.shape != expected:
            raise ValueError(
                f"The prompt must have shape {expected} (prompt_length, "
                f"hidden_dim); got {prompt.shape}."
            )
        if not np.all(np.isfinite(prompt)):
            raise ValueError("The prompt has NaN or infinite values.")
        self.prompt_layer.prompt.assign(prompt)

    def backbone_fingerprint(self):
        """SHA-256 of the backbone's token embedding and architecture."""
        return prompt_file.backbone_fingerprint(self.backbone)

    def save_prompt(self, path, task=None, labels=None, training_steps=None):
        """Saves the prompt and its metadata to a `.safetensors` file,
        atomically.

        Args:
            path: destination file.
            task: optional task name.
            labels: the task's label words (defaults to the model's).
            training_steps: steps trained (defaults to the optimizer's
                iteration count when the model has been trained).

        Returns:
            The path written.
        """
        if training_steps is None and getattr(self, "optimizer", None):
            training_steps = int(self.optimizer.iterations.numpy())
        initializer = self.prompt_initializer
        metadata = {
            "backbone_fingerprint": self.backbone_fingerprint(),
            "task": task,
            "labels": labels if labels is not None else self.labels,
            "initializer": initializer if isinstance(initializer, str) else
            type(initializer).__name__,
            "training_steps": training_steps,
        }
        path = prompt_file.save_prompt_file(path, self.get_prompt(), metadata)
        logger.info("Saved prompt to %s", path)
        return path

    def load_prompt(self, path):
        """Loads a prompt file saved for this backbone and returns its
        metadata. Raises `PromptFileError` if the file is malformed or was
        trained on a different backbone."""
        prompt, metadata = prompt_file.read_prompt_file(path)
        prompt_file.check_prompt_compatible(
            metadata,
            prompt,
            fingerprint=self.backbone_fingerprint(),
            prompt_length=self.prompt_length,
            hidden_dim=self.hidden_dim,
            source=f"'{path}'",
        )
        self.set_prompt(prompt)
        return metadata

    # === Construction ===

    @classmethod
    def from_preset(
        cls,
        preset,
        load_weights=True,
        *,
        encoder_sequence_length=None,
        decoder_sequence_length=None,
        **kwargs,
    ):
        """Builds a prompted model on a pretrained T5.

        Args:
            preset: a KerasHub preset name (e.g. `"t5_small_multi"`), a
                local KerasHub preset directory, a keras-prompt built-in
                preset name, or a local Hugging Face T5 checkpoint directory.
            load_weights: whether to load the pretrained weights.
            encoder_sequence_length, decoder_sequence_length: optional
                preprocessor lengths.
            **kwargs: `PromptedT5Seq2SeqLM` arguments (`prompt_length`,
                `prompt_initializer`, `labels`, ...).

        Example:
        ```python
        model = keras_prompt.PromptedT5Seq2SeqLM.from_preset(
            "t5_small_multi", prompt_length=20
        )
        ```
        """
        backbone, preprocessor = load_backbone_and_preprocessor(
            preset,
            load_weights=load_weights,
            encoder_sequence_length=encoder_sequence_length,
            decoder_sequence_length=decoder_sequence_length,
        )
        return cls(backbone, preprocessor, **kwargs)

    def get_config(self):
        config = super().get_config()
        initializer = self.prompt_initializer
        if not isinstance(initializer, str):
            initializer = keras.initializers.serialize(
                initializers.get(initializer)
            )
        config.update(
            {
                "prompt_length": self.prompt_length,
                "prompt_initializer": initializer,
                "labels": self.labels,
                "init_text": self.init_text,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        initializer = config.get("prompt_initializer")
        if isinstance(initializer, dict):
            config["prompt_initializer"] = keras.initializers.deserialize(
                initializer
            )
        return super().from_config(config)


def _mask_after_stop(token_ids, padding_mask, stop_token_ids):
    """Output mask: everything up to and including the first generated stop
    token (positions of the decoder prompt never count as a stop)."""
    if stop_token_ids is None:
        return ops.ones_like(token_ids, dtype="bool")
    generated = ops.logical_not(ops.cast(padding_mask, "bool"))
    is_stop = ops.zeros_like(token_ids, dtype="bool")
    for stop_id in stop_token_ids:
        is_stop = ops.logical_or(is_stop, ops.equal(token_ids, stop_id))
    stops = ops.cast(ops.logical_and(is_stop, generated), "int32")
    after_stop = ops.cumsum(stops, axis=-1) - stops
    return ops.equal(after_stop, 0)
