import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from keras_prompt.models.causal_choice_scores import (
    continuation_log_likelihoods,
)
from keras_prompt.models.causal_choice_scores import continuation_ids
from keras_prompt.models.causal_texts import causal_texts
from keras_prompt.models.causal_lm_family import CausalLMFamily
from keras_prompt.models.decoding_loop import decode_tokens
from keras_prompt.models.decoding_loop import sampler_next_token
from keras_prompt.models.soft_prompt_mixin import SoftPromptMixin

TOKEN_INPUTS = ("token_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="keras_prompt")
class PromptedCausalLM(SoftPromptMixin, keras_hub.models.CausalLM):
    """A frozen decoder-only LM steered by a trainable soft prompt.

    Wraps a KerasHub decoder-only backbone (GPT-2, Gemma, Llama / Llama 3,
    Mistral, Qwen, Qwen 3), freezes every one of its weights and puts
    `prompt_length` free vectors before the whole embedded input, the start
    token included (PEFT's `CAUSAL_LM` placement). Positions run over prompt
    + input and the attention mask gets the prompt's ones; the prompt sits
    where PEFT with Hugging Face transformers 5 puts it (GPT-2's learned
    positions are added to it; Gemma scales its token embeddings by
    `sqrt(hidden_dim)`, not the prompt; see `CausalLMFamily`), so PEFT
    prompts serve unchanged. Only the prompt trains.

    It is a KerasHub `CausalLM` task: its inputs are the preprocessor's
    `token_ids` and `padding_mask`, its output the float32 logits of the
    input positions `[batch, length, vocabulary]` (the prompt's positions
    are not returned), so `fit` with a `CausalLMPreprocessor` (or any `y`
    and `sample_weight` of next tokens) trains the prompt, with the loss
    averaged over the weighted tokens.

    `generate()` runs keras-prompt's one cached decoding loop on the
    backbone's own cached layers, with the prompt in the cache: one pass
    fills the cache with prompt + input, then each step adds one token
    (inputs are right-padded; each row continues after its own last token).
    `score()` ranks candidate continuations by log-likelihood. Both, and
    `forward()`, take per-example `prompts` or `tasks` (names in
    `prompt_bank`), so one batch can mix tasks. Reparameterization,
    initializers and prompt files work as in `PromptedT5Seq2SeqLM`.

    Args:
        backbone: a KerasHub decoder-only backbone (see above). It is frozen
            in place.
        preprocessor: a `keras_hub.models.CausalLMPreprocessor` of the same
            family, or `None`. Needed for text and for initializers built
            from words.
        prompt_length: int. Number of prompt vectors (default 100); 0 runs
            the frozen model alone.
        prompt_initializer: `"random_uniform"`, `"sampled_vocab"`,
            `"class_labels"` (needs `labels`), `"text"` (needs `init_text`),
            `"from_file"` (needs `init_file`), an array, or a Keras
            initializer.
        labels: optional label words; used by `"class_labels"` and recorded
            in saved prompts.
        init_text: optional string for the `"text"` initializer.
        seed: optional int seed for the initializer.
        init_file: a prompt file for the `"from_file"` initializer.
        reparameterization: `None` or `"residual"`.
        bottleneck_size: the residual MLP's width (default 800).
        **kwargs: passed to `keras_hub.models.Task`.

    Example:
    ```python
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=32,
    )
    model = keras_prompt.PromptedCausalLM(backbone, prompt_length=4)
    x = {"token_ids": np.array([[1, 5, 6, 7]]),
         "padding_mask": np.array([[1, 1, 1, 1]])}
    y = np.array([[5, 6, 7, 2]])
    model.fit(x, y, sample_weight=np.array([[0, 0, 1, 1]]), verbose=0)
    model.generate(dict(x), max_length=8, stop_token_ids=None)
    ```
    """

    backbone_cls = keras_hub.models.Backbone
    preprocessor_cls = keras_hub.models.CausalLMPreprocessor
    SEQUENCE_LENGTH_KEYS = ("sequence_length", "max_input_length")
    TEXT_FORMAT_KEYS = ("separator", "target_prefix")
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
        # === Layers ===
        self._family = CausalLMFamily(backbone)
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
        logits = self.prompted_logits(
            inputs["token_ids"], inputs["padding_mask"]
        )
        keras_hub.models.CausalLM.__init__(
            self, inputs=inputs, outputs=logits, **kwargs
        )

        # === Config ===
        self._finish_prompt_setup()

    @property
    def family(self):
        """The backbone's `CausalLMFamily` (how its layers run)."""
        return self._family

    def input_embedding_rows(self):
        """The token embedding rows as the first layer sees them (Gemma's
        scaled by `sqrt(hidden_dim)`), which the vocabulary initializers
        sample from."""
        rows = ops.convert_to_numpy(self.backbone.token_embedding.embeddings)
        return rows * np.float32(self._family.embedding_scale)


    def check_length(self, length):
        """Raises `ValueError` when `prompt_length + length` positions do not
        fit the backbone's learned positions (GPT-2)."""
        limit = self._family.max_sequence_length
        if limit is not None and isinstance(length, int):
            if self.prompt_length + length > limit:
                raise ValueError(
                    f"A sequence of {length} tokens after a prompt of "
                    f"{self.prompt_length} needs {self.prompt_length + length} "
                    f"positions; {type(self.backbone).__name__} has "
                    f"{limit}. Use a sequence length of at most "
                    f"{limit - self.prompt_length} (or a shorter prompt)."
                )

    # === Forward pass ===

    def prompted_logits(
        self, token_ids, padding_mask, prompts=None, training=None
    ):
        """Logits of the input positions with the prompt before them.

        Args:
            token_ids: int `[batch, length]`, right-padded.
            padding_mask: int or bool `[batch, length]`.
            prompts: optional per-example prompts
                `[batch, prompt_length, hidden_dim]`.
            training: whether dropout is active.

        Returns:
            float32 `[batch, length, vocabulary]`.
        """
        self.check_length(token_ids.shape[1])
        x = self._family.embed_tokens(token_ids)
        x, mask = self.prompt_layer(
            x, ops.cast(padding_mask, "int32"), prompt=prompts
        )
        x = self._family.embedded(x, training=training)
        x = self._family.layers(x, mask, training=training)
        return self._family.logits(x[:, self.prompt_length :])

    def forward(self, inputs, *, prompts=None, tasks=None, training=False):
        """Logits with a prompt per example (`prompts` or `tasks`); row `i`
        equals what example `i` gets alone with its own prompt."""
        inputs = self._check_token_inputs(inputs)
        batch_size = ops.shape(inputs["token_ids"])[0]
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        return self.prompted_logits(
            ops.convert_to_tensor(inputs["token_ids"], "int32"),
            inputs["padding_mask"],
            prompts,
            training=training,
        )

    def default_loss(self):
        """Sparse cross-entropy from logits averaged over the tokens with a
        sample weight (the targets)."""
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )

    # === Generation ===

    def pad_id(self):
        tokenizer = getattr(self.preprocessor, "tokenizer", None)
        return int(getattr(tokenizer, "pad_token_id", None) or 0)

    def generate_step(
        self, inputs, stop_token_ids=None, *, next_token=None, portable=False
    ):
        """Generates a batch with the prompt and keras-prompt's one cached
        decoding loop.

        Args:
            inputs: dict with `token_ids` and `padding_mask` (right-padded;
                where the mask is 1 the ids are given, elsewhere generated;
                every row has at least one given token), optionally
                `prompts` `[batch, prompt_length, hidden_dim]` and
                `end_positions` (int32 `[batch]`, the last position each row
                may generate).
            stop_token_ids: tuple of ids that end a row, or `None`.
            next_token: `fn(logits) -> int32 ids`; defaults to the compiled
                KerasHub sampler.
            portable: no XLA (for exports, which also trace the cache writes
                as scatters, `keras_prompt.export.scatter_cache_writes`).
                Otherwise the decoding loop runs under XLA if
                `compile_decoding_loop` is set (by `compile()`).

        Returns:
            dict with `token_ids` (int32, the pad id after each row's first
            generated stop token) and `padding_mask` (bool, true up to and
            including it).
        """
        token_ids = ops.cast(inputs["token_ids"], "int32")
        padding_mask = ops.cast(inputs["padding_mask"], "int32")
        family = self._family
        prompt_length = self.prompt_length
        batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        # One pass over prompt + every position fills the cache (what the
        # steps write later overwrites what padding left there).
        x = family.embed_tokens(token_ids)
        x, _ = self.prompt_layer(x, padding_mask, prompt=inputs.get("prompts"))
        x = family.embedded(x)
        _, cache = family.cached_layers(
            x, family.empty_cache(batch_size, prompt_length + length), 0
        )

        def step(ids, index, cache):
            position = index + prompt_length
            x = family.embed_tokens(ops.expand_dims(ids, 1))
            x = family.embedded(x, start_index=position)
            x, cache = family.cached_layers(x, cache, position)
            return family.logits(x)[:, 0], cache

        # Each row continues after its own last given token; the shortest
        # row's last one is the first position fed.
        shortest = ops.min(ops.sum(padding_mask, axis=1))
        ids, mask = decode_tokens(
            step,
            cache,
            token_ids,
            padding_mask,
            stop_token_ids=stop_token_ids,
            next_token=next_token or sampler_next_token(self.sampler),
            pad_id=self.pad_id(),
            start_index=ops.maximum(shortest - 1, 0),
            end_positions=inputs.get("end_positions"),
            compile_loop=self.compile_decoding_loop and not portable,
        )
        return {"token_ids": ids, "padding_mask": mask}

    def generate(
        self,
        inputs,
        max_length=None,
        stop_token_ids="auto",
        strip_prompt=False,
        *,
        max_new_tokens=None,
        prompts=None,
        tasks=None,
    ):
        """Generates with the prompt, greedy by default.

        Args:
            inputs: a string or list of strings (needs a preprocessor; gives
                text), or a dict with `token_ids` and `padding_mask`
                (right-padded, the generated positions masked out; gives a
                dict of `token_ids` and `padding_mask`).
            max_length: total length, input included (KerasHub's meaning:
                shorter rows get more new tokens); defaults to the
                preprocessor's `sequence_length`.
            stop_token_ids: `"auto"` (the tokenizer's end token), `None`,
                or a tuple of ids.
            strip_prompt: return only the generated text (as KerasHub's
                `CausalLM.generate`; the input is returned too by default).
            max_new_tokens: instead of `max_length`, the number of tokens
                each row may add after its own input, so that every row
                gets what it gets alone.
            prompts: optional per-example prompts `[batch, prompt_length,
                hidden_dim]`.
            tasks: optional task names in `prompt_bank`, one per example.

        Text leaves out special tokens and ids the tokenizer lacks, so no
        id ever fails a batch.
        """
        if max_new_tokens is not None and max_length is not None:
            raise ValueError("Pass `max_length` or `max_new_tokens`, not both.")
        single = isinstance(inputs, str)
        is_text = not isinstance(inputs, dict)
        if is_text:
            batch = self._text_batch(inputs, max_length, max_new_tokens)
        else:
            batch = self._token_batch(inputs, max_length, max_new_tokens)
        if max_new_tokens is not None:
            lengths = ops.sum(ops.cast(batch["padding_mask"], "int32"), axis=1)
            batch["end_positions"] = lengths - 1 + int(max_new_tokens)
        batch_size = int(batch["token_ids"].shape[0])
        self.check_length(int(batch["token_ids"].shape[1]))
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        if prompts is not None:
            batch["prompts"] = prompts
        outputs = self.make_generate_function()(
            batch, stop_token_ids=self._stop_token_ids(stop_token_ids)
        )
        if not is_text:
            return {key: ops.convert_to_numpy(v) for key, v in outputs.items()}
        mask = ops.convert_to_numpy(outputs["padding_mask"])
        if strip_prompt:
            mask = np.logical_and(
                mask, np.logical_not(ops.convert_to_numpy(batch["padding_mask"]))
            )
        texts = self.detokenize(outputs["token_ids"], mask)
        return texts[0] if single else texts

    def generated_texts(
        self, inputs, max_new_tokens, stop_token_ids="auto", **kwargs
    ):
        """The text each example of a token batch continues with (at most
        `max_new_tokens` tokens, the end token included), without its
        input.

        Args:
            inputs: dict with `token_ids` and `padding_mask` (right-padded;
                columns past the inputs are room the outputs may use).
            max_new_tokens: the budget per example.
            stop_token_ids: as in `generate()`.
            **kwargs: `prompts` or `tasks`, as in `generate()`.
        """
        outputs = self.generate(
            inputs,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop_token_ids,
            **kwargs,
        )
        given = np.asarray(ops.convert_to_numpy(inputs["padding_mask"]), bool)
        new = np.asarray(outputs["padding_mask"], bool)
        new[:, : given.shape[1]] &= ~given
        return self.detokenize(outputs["token_ids"], new)

    def _stop_token_ids(self, stop_token_ids):
        if stop_token_ids != "auto":
            return None if stop_token_ids is None else tuple(stop_token_ids)
        if self.preprocessor is None:
            raise ValueError(
                "stop_token_ids='auto' needs a preprocessor (its end token); "
                "pass the ids or None."
            )
        return (int(self.preprocessor.tokenizer.end_token_id),)

    def _text_batch(self, inputs, max_length, max_new_tokens):
        if self.preprocessor is None:
            raise ValueError(
                "Text inputs need a preprocessor: build the model with "
                "`preprocessor=` or `from_preset()`, or pass token ids."
            )
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        if max_new_tokens is not None:
            tokenizer = self.preprocessor.tokenizer
            longest = max(
                np.asarray(tokenizer(text)).reshape(-1).shape[0]
                for text in inputs
            )
            # The start token comes first.
            max_length = longest + 1 + int(max_new_tokens)
        batch = self.preprocessor.generate_preprocess(
            inputs, sequence_length=max_length
        )
        return {key: ops.cast(batch[key], "int32") for key in TOKEN_INPUTS}

    def _token_batch(self, inputs, max_length, max_new_tokens=None):
        self._check_token_inputs(inputs)
        token_ids = np.asarray(inputs["token_ids"], "int32")
        padding_mask = np.asarray(inputs["padding_mask"]).astype("int32")
        lengths = padding_mask.sum(axis=1)
        if token_ids.ndim != 2 or padding_mask.shape != token_ids.shape:
            raise ValueError(
                "`token_ids` and `padding_mask` must be [batch, length] of the "
                f"same shape; got {token_ids.shape} and {padding_mask.shape}."
            )
        if (lengths == 0).any():
            raise ValueError(
                f"Rows {np.flatnonzero(lengths == 0).tolist()} have no given "
                "token: every row needs at least its start token."
            )
        prefix = np.arange(token_ids.shape[1])[None, :] < lengths[:, None]
        if not np.array_equal(padding_mask.astype(bool), prefix):
            rows = np.flatnonzero((padding_mask.astype(bool) != prefix).any(1))
            raise ValueError(
                f"`padding_mask` rows {rows.tolist()} are not right-padded: "
                "each row must be ones (its given tokens) then zeros."
            )
        if max_new_tokens is not None:
            max_length = int(lengths.max()) + int(max_new_tokens)
        if max_length is not None and max_length > token_ids.shape[1]:
            extra = max_length - token_ids.shape[1]
            token_ids = np.pad(token_ids, ((0, 0), (0, extra)))
            padding_mask = np.pad(padding_mask, ((0, 0), (0, extra)))
        return {
            "token_ids": ops.convert_to_tensor(token_ids),
            "padding_mask": ops.convert_to_tensor(padding_mask),
        }

    def detokenize(self, token_ids, padding_mask=None):
        """Ids `[batch, length]` -> list of strings: the ids where
        `padding_mask` is true, without special tokens and ids the tokenizer
        lacks (so no id fails), bytes that are not UTF-8 replaced."""
        if self.preprocessor is None:
            raise ValueError(
                "Text output needs a preprocessor (its tokenizer): build the "
                "model with `preprocessor=` or `from_preset()`."
            )
        texts = causal_texts(
            self.preprocessor.tokenizer,
            ops.convert_to_numpy(token_ids),
            None if padding_mask is None else ops.convert_to_numpy(padding_mask),
        )
        return [text.decode("utf-8") for text in np.asarray(texts).tolist()]

    # === Rank classification ===

    def score(self, inputs, choices, *, prompts=None, tasks=None):
        """Log-likelihood of each candidate continuation (rank
        classification), all choices of a batch in one compiled call.

        Args:
            inputs: a string or list of strings (needs a preprocessor; the
                start token is added), or a dict with `token_ids` and
                `padding_mask` (right-padded).
            choices: candidate continuation strings (tokenized as given, so
                give a byte-level BPE's words their leading space; the end
                token is appended and scored) or token-id lists (scored as
                given).
            prompts, tasks: optional per-example prompts or task names.

        Returns:
            float32 array `[batch, len(choices)]`.

        Example:
        ```python
        scores = model.score(["review: a great film. sentiment:"],
                             [" positive", " negative"])
        ```
        """
        tokenizer = getattr(self.preprocessor, "tokenizer", None)
        choice_ids, choice_mask = continuation_ids(choices, tokenizer)
        if isinstance(inputs, dict):
            # Columns past the longest row (generation room) score nothing.
            batch = self._token_batch(inputs, None, max_new_tokens=0)
            longest = int(ops.max(ops.sum(batch["padding_mask"], axis=1)))
            batch = {key: value[:, :longest] for key, value in batch.items()}
        else:
            batch = self._text_batch(inputs, None, 0)
        batch_size = int(batch["token_ids"].shape[0])
        self.check_length(
            int(batch["token_ids"].shape[1]) + int(choice_ids.shape[1])
        )
        prompts = self.per_example_prompts(prompts, tasks, batch_size)
        if self._score_function is None:
            self._score_function = tf.function(
                lambda *args: continuation_log_likelihoods(
                    lambda ids, mask, prompts: self.prompted_logits(
                        ids, mask, prompts, training=False
                    ),
                    *args,
                ),
                jit_compile=bool(getattr(self, "jit_compile", False)),
            )
        scores = self._score_function(
            batch["token_ids"],
            batch["padding_mask"],
            choice_ids,
            choice_mask,
            prompts,
        )
        return ops.convert_to_numpy(scores)

    # === Construction ===

    @classmethod
    def from_preset(
        cls, preset, load_weights=True, *, sequence_length=None, **kwargs
    ):
        """Builds a prompted model on a pretrained decoder-only LM.

        Args:
            preset: a KerasHub preset name (e.g. `"gpt2_base_en"`), a local
                KerasHub preset directory, or a local Hugging Face
                checkpoint directory of a supported family (KerasHub
                converts it, tokenizer included).
            load_weights: whether to load the pretrained weights.
            sequence_length: optional preprocessor length.
            **kwargs: `PromptedCausalLM` arguments (`prompt_length`, ...).

        Example:
        ```python
        model = keras_prompt.PromptedCausalLM.from_preset(
            "gpt2_base_en", prompt_length=20
        )
        ```
        """
        task = keras_hub.models.CausalLM.from_preset(
            preset, load_weights=load_weights
        )
        preprocessor = task.preprocessor
        if preprocessor is not None and sequence_length is not None:
            preprocessor.sequence_length = sequence_length
        return cls(task.backbone, preprocessor, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(self._prompt_config())
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(cls._deserialize_prompt_config(config))
