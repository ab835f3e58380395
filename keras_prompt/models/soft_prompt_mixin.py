"""What every prompted task model shares: its prompt, prompt files, banks."""

import logging

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.python.framework.config import is_op_determinism_enabled

from keras_prompt import initializers
from keras_prompt.layers.prompt_layer import PromptLayer
from keras_prompt.layers.residual_prompt_reparameterization import (
    DEFAULT_BOTTLENECK_SIZE,
)
from keras_prompt.layers.residual_prompt_reparameterization import (
    ResidualPromptReparameterization,
)
from keras_prompt.layers.sixteen_bit_dropout import use_sixteen_bit_dropout
from keras_prompt.utils.cpu_defaults import resolve_jit_compile
from keras_prompt.prompts import prompt_file
from keras_prompt.prompts.prompt_bank import PromptBank

logger = logging.getLogger(__name__)

REPARAMETERIZATIONS = ("residual",)


class SoftPromptMixin:
    """The soft prompt of a task model (`PromptedT5Seq2SeqLM`,
    `PromptedCausalLM`): its layer and initializers, per-example prompts and
    the bank, prompt access, prompt files, and the config entries.

    A task model calls `_build_prompt_layer()` before building its
    functional graph and `_finish_prompt_setup()` after, and names the
    sequence lengths its prompt files record in `SEQUENCE_LENGTH_KEYS`
    (read from the preprocessor's attributes of the same names) and its
    token inputs in `TOKEN_INPUTS` (checked on every call).
    """

    SEQUENCE_LENGTH_KEYS = ()
    # How training formatted text for the model (recorded, not defaulted).
    TEXT_FORMAT_KEYS = ()
    TOKEN_INPUTS = ()

    def _build_prompt_layer(
        self,
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
    ):
        """Freezes `backbone` in place (its dropout drawing 16-bit masks,
        `SixteenBitDropout`) and builds the prompt layer; returns the
        functional graph's token inputs (`TOKEN_INPUTS`)."""
        backbone.trainable = False
        use_sixteen_bit_dropout(backbone)
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.prompt_initializer = prompt_initializer
        self.labels = list(labels) if labels is not None else None
        self.init_text = init_text
        self.seed = seed
        self.init_file = init_file
        self.reparameterization = reparameterization
        self.bottleneck_size = self._check_reparameterization(
            prompt_length, bottleneck_size
        )
        initializer = self._resolve_initializer(prompt_length)
        self.prompt_layer = PromptLayer(
            prompt_length=prompt_length,
            hidden_dim=backbone.hidden_dim,
            initializer=initializer,
            reparameterization=ResidualPromptReparameterization(
                self.bottleneck_size, seed=seed, name="reparameterization"
            )
            if reparameterization
            else None,
            dtype=backbone.dtype_policy,
            name="prompt",
        )
        self.prompt_layer.build()
        if reparameterization and isinstance(
            initializer, initializers.FromArray
        ):
            # Given values (an array, a file) are the effective prompt.
            self.prompt_layer.reparameterization.zero_residual()
        self.prompt_length = self.prompt_layer.prompt_length
        self.hidden_dim = backbone.hidden_dim
        return {
            name: keras.Input((None,), dtype="int32", name=name)
            for name in self.TOKEN_INPUTS
        }

    def _finish_prompt_setup(self):
        # KerasHub only creates these in `compile()`; `compile=False` must
        # still allow `generate()`.
        if not hasattr(self, "generate_function"):
            self.generate_function = None
            self.sampler = keras_hub.samplers.GreedySampler()
            self.compile_decoding_loop = False
        self._score_function = None
        self.prompt_bank = PromptBank(
            self.prompt_length, self.hidden_dim, self.backbone_fingerprint
        )

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._check_token_inputs(inputs), *args, **kwargs)

    def _check_token_inputs(self, inputs, required=None):
        """Names the wrong keys (Keras would not) before anything runs;
        `required` defaults to all of `TOKEN_INPUTS`."""
        required = self.TOKEN_INPUTS if required is None else required
        if not isinstance(inputs, dict):
            raise ValueError(
                f"{type(self).__name__} takes a dict of token inputs with "
                f"keys {list(required)}; got {type(inputs).__name__}. Use "
                "`generate()` or `score()` for text."
            )
        missing = [key for key in required if key not in inputs]
        unknown = sorted(set(inputs) - set(self.TOKEN_INPUTS))
        if missing or unknown:
            hint = (
                " Per-example prompts go to `forward(..., prompts=)`, "
                "`generate(..., prompts=)` or `score(..., prompts=)`."
                if "prompts" in unknown
                else ""
            )
            raise ValueError(
                f"Model inputs are missing {missing} and have unknown keys "
                f"{unknown}; expected {list(required)}.{hint}"
            )
        return inputs

    def _check_reparameterization(self, prompt_length, bottleneck_size):
        """The bottleneck size to use (`None` without reparameterization);
        raises `ValueError` naming a bad setting."""
        if self.reparameterization is None:
            if bottleneck_size is not None:
                raise ValueError(
                    f"`bottleneck_size={bottleneck_size!r}` is a setting of "
                    "the residual reparameterization: pass "
                    "`reparameterization='residual'` too, or leave "
                    "`bottleneck_size` out."
                )
            return None
        if self.reparameterization not in REPARAMETERIZATIONS:
            raise ValueError(
                f"Unknown `reparameterization={self.reparameterization!r}`; "
                f"use None (plain prompt tuning) or one of "
                f"{list(REPARAMETERIZATIONS)}."
            )
        if not prompt_length:
            raise ValueError(
                "`reparameterization='residual'` needs a prompt to "
                "reparameterize; got `prompt_length=0`. Use a positive "
                "prompt_length."
            )
        if bottleneck_size is None:
            return DEFAULT_BOTTLENECK_SIZE
        return bottleneck_size

    def _resolve_initializer(self, prompt_length):
        if not prompt_length:
            return "zeros"
        tokenizer = getattr(self.preprocessor, "tokenizer", None)
        initializer = initializers.get(
            self.prompt_initializer,
            embeddings=self.input_embedding_rows(),
            tokenizer=tokenizer,
            labels=self.labels,
            text=self.init_text,
            path=self.init_file,
            seed=self.seed,
        )
        if isinstance(initializer, initializers.FromFile):
            initializer.check(
                fingerprint=self.backbone_fingerprint(),
                prompt_length=prompt_length,
                hidden_dim=self.backbone.hidden_dim,
            )
        return initializer

    def input_embedding_rows(self):
        """The token embedding matrix as the prompt's neighbours enter the
        model (what the vocabulary initializers sample from)."""
        return ops.convert_to_numpy(self.backbone.token_embedding.embeddings)

    def per_example_prompts(self, prompts=None, tasks=None, batch_size=None):
        """`prompts` checked, or the bank's prompts of `tasks`, as a float32
        `[batch, prompt_length, hidden_dim]` tensor; `None` for the model's
        own prompt.

        Raises `ValueError` naming the problem when both are given, a task
        is unknown, the shape is wrong or the count differs from
        `batch_size`.
        """
        if prompts is not None and tasks is not None:
            raise ValueError("Pass `prompts` or `tasks`, not both.")
        if tasks is not None:
            tasks = [tasks] if isinstance(tasks, (str, int)) else list(tasks)
            prompts = self.prompt_bank.select(tasks)
        if prompts is None:
            return None
        if not ops.is_tensor(prompts) or tf.executing_eagerly():
            values = np.asarray(prompts, "float32")
            finite = np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
            if values.ndim == 3 and not finite.all():
                raise ValueError(
                    "`prompts` has NaN or infinite values in rows "
                    f"{np.flatnonzero(~finite).tolist()}: every example needs "
                    "a finite prompt (a diverged or corrupt prompt?)."
                )
            prompts = values
        prompts = ops.cast(prompts, "float32")
        self.prompt_layer.check_prompt_shape(prompts)
        if batch_size is not None and isinstance(batch_size, int):
            if prompts.shape[0] != batch_size:
                raise ValueError(
                    f"Got {prompts.shape[0]} prompts for a batch of "
                    f"{batch_size} examples; give one per example."
                )
        return prompts

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
            loss: `"auto"` gives the model's `default_loss()`: sparse
                cross-entropy from logits over target tokens only, averaged
                over them.
            weighted_metrics: `"auto"` gives token accuracy.
            sampler: the `generate()` sampler; greedy by default.
            **kwargs: see `keras.Model.compile` (e.g. `steps_per_execution`).
                `jit_compile` defaults to `"auto"`: XLA on GPUs and TPUs;
                on CPUs TensorFlow's own (oneDNN) kernels, which train as
                fast as XLA there with less memory, while `generate()`
                still runs its decoding loop, hundreds of small ops per
                step, under XLA (`compile_decoding_loop`; see
                `keras_prompt.utils.cpu_defaults`). Eager runs never
                compile. Keras cannot compile with XLA while TensorFlow op
                determinism is enabled: then `model.jit_compile` is `False`,
                and a warning says so if `jit_compile=True` was asked for.
        """
        requested = kwargs.get("jit_compile")
        kwargs["jit_compile"] = (
            False if kwargs.get("run_eagerly")
            else resolve_jit_compile(kwargs.get("jit_compile", "auto"))
        )
        # XLA unless it was turned off: on CPU ("auto") the encoder or the
        # prefill runs on TensorFlow's kernels and only the loop under XLA.
        self.compile_decoding_loop = (
            requested is not False
            and not kwargs.get("run_eagerly")
            and not is_op_determinism_enabled()
        )
        if optimizer == "auto":
            from keras_prompt.optimizers import Adafactor

            optimizer = Adafactor(learning_rate=0.3)
        if loss == "auto":
            loss = self.default_loss()
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
        if requested is True and not self.jit_compile:
            logger.warning(
                "jit_compile=True was requested but Keras runs this model "
                "without XLA (TensorFlow op determinism is enabled); call "
                "`tf.config.experimental.enable_op_determinism()` only where "
                "bit-exact kernels matter more than speed."
            )
        self._score_function = None

    def compile_from_config(self, config):
        """Compiles a model loaded from a `.keras` file as it was saved
        (Keras skips custom `compile()` methods otherwise)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # === Prompt access and files ===

    def get_prompt(self):
        """The prompt as a float32 NumPy array `[prompt_length, hidden_dim]`:
        the prompt the model sees (with a reparameterization, the folded
        prompt, which serves unchanged in a model without one)."""
        return ops.convert_to_numpy(self.prompt_layer.effective_prompt()).copy()

    def set_prompt(self, prompt):
        """Replaces the prompt with `prompt` (`[prompt_length, hidden_dim]`).

        `get_prompt()` then returns `prompt` exactly. With a
        reparameterization, `prompt` becomes the raw prompt and the
        reparameterization's residual is zeroed (see the class docstring),
        so that the model computes exactly what a plain model with `prompt`
        does; training then continues from there."""
        prompt = np.asarray(prompt, dtype="float32")
        expected = (self.prompt_length, self.hidden_dim)
        if prompt.shape != expected:
            raise ValueError(
                f"The prompt must have shape {expected} (prompt_length, "
                f"hidden_dim); got {prompt.shape}."
            )
        if not np.all(np.isfinite(prompt)):
            raise ValueError("The prompt has NaN or infinite values.")
        self.prompt_layer.assign_prompt(prompt)

    def backbone_fingerprint(self):
        """SHA-256 of the backbone's token embedding and architecture."""
        return prompt_file.backbone_fingerprint(self.backbone)

    def save_prompt(
        self, path, task=None, labels=None, training_steps=None, **fields
    ):
        """Saves the prompt and its metadata to a `.safetensors` file,
        atomically (see `keras_prompt.prompts.save_prompt_file`).

        The file records the sequence lengths the prompt was trained with;
        exports of it default to them (`keras-prompt export`).

        Args:
            path: destination file.
            task: optional task name.
            labels: the task's label words (defaults to the model's).
            training_steps: steps trained (defaults to the optimizer's
                iteration count when the model has been trained).
            **fields: the sequence lengths the prompt was trained with, by
                the names in `SEQUENCE_LENGTH_KEYS`
                (`encoder_sequence_length` and `decoder_sequence_length`
                for T5; `sequence_length` and `max_input_length` for a
                causal LM), each defaulting to the preprocessor's (not
                recorded without one), and how training formatted text
                (`TEXT_FORMAT_KEYS`: a causal LM's `separator` and
                `target_prefix`, recorded when given). Pass them when
                training fed batches other than the preprocessor's;
                `train()` passes its pipeline's (`prompt_file_fields()`).

        Returns:
            The path written.
        """
        known = self.SEQUENCE_LENGTH_KEYS + self.TEXT_FORMAT_KEYS
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise TypeError(
                f"Unknown prompt file fields {unknown} for "
                f"{type(self).__name__}; it records {list(known)}."
            )
        if training_steps is None and getattr(self, "optimizer", None):
            training_steps = int(self.optimizer.iterations.numpy())
        for key in self.SEQUENCE_LENGTH_KEYS:
            if fields.get(key) is None:
                fields[key] = getattr(self.preprocessor, key, None)
        initializer = self.prompt_initializer
        metadata = {
            "backbone_fingerprint": self.backbone_fingerprint(),
            "task": task,
            "labels": labels if labels is not None else self.labels,
            "initializer": initializer
            if isinstance(initializer, str)
            else type(initializer).__name__,
            "training_steps": training_steps,
            # `None` (no preprocessor) is left out of the file.
            **fields,
            # The values are folded: informative only, any model loads them.
            "reparameterization": self.reparameterization,
        }
        if isinstance(self.prompt_layer.initializer, initializers.FromFile):
            metadata.update(self.prompt_layer.initializer.source_metadata())
        path = prompt_file.save_prompt_file(path, self.get_prompt(), metadata)
        logger.debug("Saved prompt to %s", path)
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

    # === Config ===

    def _prompt_config(self):
        """The config entries of the prompt (for `get_config`)."""
        initializer = self.prompt_initializer
        init_file = self.init_file
        if isinstance(self.prompt_layer.initializer, initializers.FromFile):
            # The file's values, so that the model loads without the file
            # (and `from_config` first builds a backbone of random weights,
            # which no prompt file matches).
            initializer = initializers.FromArray(
                self.prompt_layer.initializer.array
            )
            init_file = None
        if not isinstance(initializer, str):
            initializer = keras.initializers.serialize(
                initializers.get(initializer)
            )
        return {
            "prompt_length": self.prompt_length,
            "prompt_initializer": initializer,
            "labels": self.labels,
            "init_text": self.init_text,
            "seed": self.seed,
            "init_file": init_file,
            "reparameterization": self.reparameterization,
            "bottleneck_size": self.bottleneck_size,
        }

    @staticmethod
    def _deserialize_prompt_config(config):
        """`config` with its prompt initializer deserialized."""
        config = dict(config)
        initializer = config.get("prompt_initializer")
        if isinstance(initializer, dict):
            config["prompt_initializer"] = keras.initializers.deserialize(
                initializer
            )
        return config
