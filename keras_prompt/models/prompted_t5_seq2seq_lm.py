import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from keras_prompt.models.decoding_loop import decode_tokens
from keras_prompt.models.decoding_loop import sampler_next_token
from keras_prompt.models.presets import load_backbone_and_preprocessor
from keras_prompt.models.rank_classification import DECODER_START_ID
from keras_prompt.models.rank_classification import PAD_ID
from keras_prompt.models.rank_classification import choice_log_likelihoods
from keras_prompt.models.rank_classification import choice_tensors
from keras_prompt.models.soft_prompt_mixin import SoftPromptMixin
from keras_prompt.models.t5_cached_decoder import T5CachedDecoder
from keras_prompt.models.t5_detokenizer import T5Detokenizer

# T5 vocabularies put `</s>` at id 1.
T5_END_ID = 1
TOKEN_INPUTS = (
    "encoder_token_ids",
    "encoder_padding_mask",
    "decoder_token_ids",
    "decoder_padding_mask",
)


@keras.saving.register_keras_serializable(package="keras_prompt")
class PromptedT5Seq2SeqLM(SoftPromptMixin, keras_hub.models.Seq2SeqLM):
    """A frozen T5 steered by a trainable soft prompt (prompt tuning).

    Wraps a `keras_hub.models.T5Backbone`, freezes every one of its weights,
    and prepends `prompt_length` free vectors to the embedded encoder input
    (Lester, Al-Rfou & Constant, 2021). Only those vectors train: the model's
    `trainable_weights` is exactly `[prompt]` (unless reparameterized).

    With `reparameterization="residual"` (Residual Prompt Tuning,
    Razdaibiedina et al., 2023) the prompt the encoder sees is
    `P + LayerNorm(W_up · ReLU(W_down · P))`, one small MLP shared by the
    prompt tokens (`keras_prompt.layers.ResidualPromptReparameterization`),
    and the trainable weights are `P` and that MLP. `get_prompt()`,
    `save_prompt()` and every export hold the folded prompt (those effective
    values), which any model without reparameterization loads and serves
    with the same logits. Conversely a prompt given as values, a file or an
    array (`set_prompt`, `load_prompt`, the `"from_file"` initializer, an
    array initializer) is the effective prompt: the MLP's residual starts
    at zero (its layer norm's scale and offset), so the model gives exactly
    that prompt's logits and training continues from it. The vocabulary and
    random initializers set `P`, with the MLP on top from the first step,
    as in the paper. Per-example `prompts` are effective prompts and skip
    the MLP.

    It is a KerasHub task like `keras_hub.models.T5Seq2SeqLM`: its inputs
    are the four T5 inputs the preprocessor produces (`encoder_token_ids`,
    `encoder_padding_mask`, `decoder_token_ids`, `decoder_padding_mask`),
    its output the float32 logits `[batch, decoder_length, vocabulary]`,
    so `fit`, `predict` and `evaluate` work with and without the attached
    preprocessor.

    One batch can mix tasks: `forward()`, `generate()` and `score()` take
    per-example `prompts` (`[batch, prompt_length, hidden_dim]`) or `tasks`
    (names in `model.prompt_bank`). `generate()` decodes with keras-prompt's
    cached decoding loop (the one the exported graphs run; KerasHub's
    sampler, greedy by default; XLA-compiled unless `jit_compile=False`),
    and `score()` ranks candidate targets by log-likelihood (rank
    classification).

    Args:
        backbone: a `keras_hub.models.T5Backbone`. It is frozen in place.
        preprocessor: a `keras_hub.models.T5Seq2SeqLMPreprocessor` or `None`.
            Needed for string inputs and for initializers built from words.
        prompt_length: int. Number of prompt vectors (the paper's default is
            100); 0 runs the frozen model without a prompt (prompt design).
        prompt_initializer: `"random_uniform"` (the default, uniform in
            `[-0.5, 0.5]`), `"sampled_vocab"`, `"class_labels"` (needs
            `labels`), `"text"` (needs `init_text`), `"from_file"` (needs
            `init_file`), a `[prompt_length, hidden_dim]` array, or a Keras
            initializer.
        labels: optional list of the task's label words; used by the
            `"class_labels"` initializer and recorded in saved prompts.
        init_text: optional string for the `"text"` initializer.
        seed: optional int seed for the prompt initializer (and the
            reparameterization's initial weights).
        init_file: a prompt file (or training output directory) for the
            `"from_file"` initializer (SPoT transfer: start from a prompt
            trained on another task). A file of another backbone, prompt
            length or hidden size raises `PromptFileError`.
        reparameterization: `None` (plain prompt tuning) or `"residual"`.
        bottleneck_size: the residual MLP's width (default 800, the
            official code's); only with `reparameterization="residual"`.
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

    backbone_cls = keras_hub.models.T5Backbone
    preprocessor_cls = keras_hub.models.T5Seq2SeqLMPreprocessor
    SEQUENCE_LENGTH_KEYS = ("encoder_sequence_length", "decoder_sequence_length")
    TOKEN_INPUTS = TOKEN_INPUTS

    def __init__(
        self,
        backbone,
        preprocessor=None,
        prompt_length=100,
        prompt_initializer="random_uniform",
        labels=None,
        init_text=None,
        seed=None,
        init_file=None,
        reparameterization=None,
        bottleneck_size=None,
        **kwargs,
    ):
        if not isinstance(backbone, keras_hub.models.T5Backbone):
            raise TypeError(
                "`backbone` must be a `keras_hub.models.T5Backbone`; got "
                f"{type(backbone).__name__}. Load one with "
                "`PromptedT5Seq2SeqLM.from_preset(...)`."
            )
        # === Layers ===
        inputs = self._build_prompt_layer(
            backbone,
            preprocessor,
            prompt_length,
            prompt_initializer,
            labels,
            init_text,
            seed,
            init_file,
            reparameterization,
            bottleneck_size,
        )

        # === Functional Model ===
        # Functional like every KerasHub task (KerasHub swaps `Functional`
        # into the shared base class whenever any task is built). The inputs
        # are exactly the preprocessor's outputs (KerasHub's Task contract);
        # per-example prompts go through `forward`, `generate` and `score`.
        encoder_outputs, encoder_padding_mask = self.encode(
            inputs["encoder_token_ids"], inputs["encoder_padding_mask"]
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

        # === Config ===
        self._finish_prompt_setup()


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

    def forward(self, inputs, *, prompts=None, tasks=None, training=False):
        """Teacher-forced logits, optionally with a prompt per example.

        Args:
            inputs: dict of the four token inputs.
            prompts: optional per-example prompts
                `[batch, prompt_length, hidden_dim]`.
            tasks: optional task names (or ids) in `prompt_bank`, one per
                example, instead of `prompts`.
            training: whether dropout is active.

        Returns:
            float32 logits `[batch, decoder_length, vocabulary]`; row `i`
            equals what example `i` gets alone with its own prompt.
        """
        inputs = self._check_token_inputs(inputs)
        batch_size = ops.shape(inputs["encoder_token_ids"])[0]
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        encoder_outputs, encoder_padding_mask = self.encode(
            inputs["encoder_token_ids"],
            inputs["encoder_padding_mask"],
            prompts=prompts,
            training=training,
        )
        return self.decode(
            encoder_outputs,
            encoder_padding_mask,
            inputs["decoder_token_ids"],
            inputs["decoder_padding_mask"],
            training=training,
        )

    # === Training ===

    def default_loss(self):
        """Sparse cross-entropy from logits over target tokens only (padding
        id 0 is ignored; the mean is over real target tokens)."""
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=PAD_ID
        )

    # === Generation ===

    def generate_step(
        self, inputs, stop_token_ids=None, *, next_token=None, portable=False
    ):
        """Generates a batch with the prompt and keras-prompt's one cached
        decoding loop.

        Args:
            inputs: dict with `encoder_token_ids`, `encoder_padding_mask`,
                `decoder_token_ids` and `decoder_padding_mask` (where the
                mask is 1 the decoder ids are a given prefix; column 0 is
                the start token), optionally `prompts` `[batch,
                prompt_length, hidden_dim]`.
            stop_token_ids: tuple of ids that end a row, or `None`.
            next_token: `fn(logits) -> int32 ids`; defaults to the compiled
                KerasHub sampler (`keras_prompt.models.decoding_loop`).
            portable: use only ops that tf2onnx and TFLite convert, and no
                XLA (for exports; same results). Otherwise the decoding loop
                runs under XLA if `compile_decoding_loop` is set (by
                `compile()`).

        Returns:
            dict with `decoder_token_ids` (int32; padding after each row's
            first generated stop token) and `decoder_padding_mask` (bool,
            true up to and including that stop token).
        """
        encoder_outputs, encoder_padding_mask = self.encode(
            inputs["encoder_token_ids"],
            inputs["encoder_padding_mask"],
            prompts=inputs.get("prompts"),
            training=False,
        )
        decoder = T5CachedDecoder(
            self.backbone, self.logits_from_hidden, portable=portable
        )
        decoder_token_ids = inputs["decoder_token_ids"]
        context, cache = decoder.init_cache(
            encoder_outputs,
            encoder_padding_mask,
            ops.shape(decoder_token_ids)[1],
        )
        token_ids, padding_mask = decode_tokens(
            decoder.step_function(context),
            cache,
            decoder_token_ids,
            inputs["decoder_padding_mask"],
            stop_token_ids=stop_token_ids,
            next_token=next_token or sampler_next_token(self.sampler),
            pad_id=PAD_ID,
            compile_loop=self.compile_decoding_loop and not portable,
        )
        return {
            "decoder_token_ids": token_ids,
            "decoder_padding_mask": padding_mask,
        }

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        *,
        prompts=None,
        tasks=None,
    ):
        """Generates with the prompt, greedy by default.

        Args:
            inputs: a string or list of strings, or a dict with
                `encoder_text` (and optional `decoder_text`, a decoder
                prefix), all of which need a preprocessor and give text; or
                a dict of token inputs with `encoder_token_ids` and
                `encoder_padding_mask` (optionally `decoder_token_ids` and
                `decoder_padding_mask` as a decoder prefix), which gives a
                dict with `decoder_token_ids` and `decoder_padding_mask`. A
                `tf.data.Dataset` of either is generated batch by batch.
            max_length: decoder length (the start token included); defaults
                to the preprocessor's `decoder_sequence_length`.
            stop_token_ids: `"auto"` (the tokenizer's end token, T5's
                `</s>` = 1 without a tokenizer), `None`, or a tuple of ids.
            strip_prompt: leave a text decoder prefix out of the output.
            prompts: optional per-example prompts `[batch, prompt_length,
                hidden_dim]` (one batch, not a dataset).
            tasks: optional task names in `prompt_bank`, one per example,
                instead of `prompts`.

        Text follows one rule in every path (`T5Detokenizer`): it ends at
        `</s>`, sentinels render as `<extra_id_N>` and ids without a piece
        render as nothing, so no id ever fails a batch.
        """
        if isinstance(inputs, tf.data.Dataset):
            if prompts is not None or tasks is not None:
                raise ValueError(
                    "Per-example `prompts`/`tasks` need a single batch of "
                    "inputs, not a `tf.data.Dataset`."
                )
            outputs = [
                self.generate(batch, max_length, stop_token_ids, strip_prompt)
                for batch in inputs.as_numpy_iterator()
            ]
            if outputs and isinstance(outputs[0], dict):
                return {
                    key: np.concatenate([out[key] for out in outputs])
                    for key in outputs[0]
                }
            return [text for out in outputs for text in out]
        single = isinstance(inputs, str)
        is_text = single or not isinstance(inputs, dict) or "encoder_text" in inputs
        if is_text:
            batch = self._text_batch(inputs, max_length)
        else:
            batch = self._token_batch(inputs, max_length)
        batch_size = int(batch["encoder_token_ids"].shape[0])
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        if prompts is not None:
            batch["prompts"] = prompts
        outputs = self.make_generate_function()(
            batch, stop_token_ids=self._stop_token_ids(stop_token_ids)
        )
        if not is_text:
            return {key: ops.convert_to_numpy(v) for key, v in outputs.items()}
        mask = outputs["decoder_padding_mask"]
        if strip_prompt:
            prefix = ops.cast(batch["decoder_padding_mask"], "bool")
            mask = ops.logical_and(mask, ops.logical_not(prefix))
        texts = self.detokenize(outputs["decoder_token_ids"], mask)
        return texts[0] if single else texts

    def generated_texts(
        self, inputs, max_new_tokens, stop_token_ids="auto", **kwargs
    ):
        """The text each example of a token batch generates (at most
        `max_new_tokens` tokens, the end token included), by the one
        detokenization rule.

        Args:
            inputs: dict with `encoder_token_ids` and `encoder_padding_mask`.
            max_new_tokens: the decoder's budget per example.
            stop_token_ids: as in `generate()`.
            **kwargs: `prompts` or `tasks`, as in `generate()`.
        """
        outputs = self.generate(
            inputs,
            max_length=int(max_new_tokens) + 1,
            stop_token_ids=stop_token_ids,
            **kwargs,
        )
        return self.detokenize(
            outputs["decoder_token_ids"], outputs["decoder_padding_mask"]
        )

    def _stop_token_ids(self, stop_token_ids):
        if stop_token_ids != "auto":
            return None if stop_token_ids is None else tuple(stop_token_ids)
        if self.preprocessor is not None:
            return (int(self.preprocessor.tokenizer.end_token_id),)
        return (T5_END_ID,)

    def _text_batch(self, inputs, max_length):
        if self.preprocessor is None:
            raise ValueError(
                "Text inputs need a preprocessor: build the model with "
                "`preprocessor=` or `from_preset()`, or pass token ids."
            )
        if isinstance(inputs, str):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            inputs = {
                key: [value] if isinstance(value, str) else list(value)
                for key, value in inputs.items()
            }
        else:
            inputs = list(inputs)
        batch = self.preprocessor.generate_preprocess(
            inputs, sequence_length=max_length
        )
        return {key: ops.cast(batch[key], "int32") for key in TOKEN_INPUTS}

    def _token_batch(self, inputs, max_length):
        self._check_token_inputs(
            {k: v for k, v in inputs.items()},
            required=("encoder_token_ids", "encoder_padding_mask"),
        )
        batch = {
            key: ops.convert_to_tensor(value, "int32")
            for key, value in inputs.items()
        }
        if "decoder_token_ids" not in batch:
            if max_length is None:
                if self.preprocessor is None:
                    raise ValueError(
                        "Token inputs without `decoder_token_ids` need "
                        "`max_length` (or a preprocessor)."
                    )
                max_length = self.preprocessor.decoder_sequence_length
            batch_size = ops.shape(batch["encoder_token_ids"])[0]
            batch["decoder_token_ids"] = ops.full(
                (batch_size, max_length), DECODER_START_ID, "int32"
            )
            batch["decoder_padding_mask"] = ops.tile(
                ops.one_hot([0], max_length, dtype="int32"), (batch_size, 1)
            )
        return batch

    @property
    def detokenizer(self):
        """The `T5Detokenizer` of the preprocessor's tokenizer."""
        if self.preprocessor is None:
            raise ValueError(
                "Text output needs a preprocessor (its tokenizer): build the "
                "model with `preprocessor=` or `from_preset()`."
            )
        tokenizer = self.preprocessor.tokenizer
        cached = getattr(self, "_detokenizer", None)
        if cached is None or cached.tokenizer_proto is not tokenizer.proto:
            cached = T5Detokenizer(tokenizer, self.backbone.vocabulary_size)
            self._detokenizer = cached
        return cached

    def detokenize(self, token_ids, padding_mask=None):
        """Generated ids `[batch, length]` -> list of strings, by the one
        rule of `T5Detokenizer` (never fails on an id)."""
        return self.detokenizer.decode(
            ops.convert_to_numpy(token_ids),
            None if padding_mask is None else ops.convert_to_numpy(padding_mask),
        )

    # === Rank classification ===

    def score(self, inputs, choices, *, prompts=None, tasks=None):
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
            tasks: optional task names in `prompt_bank` instead of
                `prompts`.

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
        tokenizer = getattr(self.preprocessor, "tokenizer", None)
        decoder_ids, targets, target_mask = choice_tensors(choices, tokenizer)
        if isinstance(inputs, dict):
            encoder = {
                key: ops.convert_to_tensor(inputs[key], "int32")
                for key in ("encoder_token_ids", "encoder_padding_mask")
            }
        else:
            encoder = self._text_batch(inputs, None)
        batch_size = int(encoder["encoder_token_ids"].shape[0])
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        if self._score_function is None:
            self._score_function = tf.function(
                lambda *args: choice_log_likelihoods(self, *args),
                jit_compile=bool(getattr(self, "jit_compile", False)),
            )
        scores = self._score_function(
            encoder["encoder_token_ids"],
            encoder["encoder_padding_mask"],
            decoder_ids,
            targets,
            target_mask,
            prompts,
        )
        return ops.convert_to_numpy(scores)

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
        config.update(self._prompt_config())
        if self.preprocessor is not None:
            # KerasHub's T5 preprocessor config leaves its lengths out.
            config["sequence_lengths"] = {
                "encoder_sequence_length": self.preprocessor.encoder_sequence_length,
                "decoder_sequence_length": self.preprocessor.decoder_sequence_length,
            }
        return config

    @classmethod
    def from_config(cls, config):
        config = cls._deserialize_prompt_config(config)
        lengths = config.pop("sequence_lengths", None)
        model = super().from_config(config)
        if lengths and model.preprocessor is not None:
            for name, value in lengths.items():
                setattr(model.preprocessor, name, value)
        return model
