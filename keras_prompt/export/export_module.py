"""The trackable object every exporter traces: the model's own code with its
prompts."""

import functools

import tensorflow as tf

from keras_prompt.models.decoding_loop import greedy_next_token

MODES = ("baked", "runtime", "bank")


class _ModelHandle:
    """Holds the Keras model outside TensorFlow's object graph, so that a
    SavedModel saves the backbone's variables, not the Keras objects (and
    their compiled training and generation functions)."""

    def __init__(self, model):
        self.model = model


def float32_model(model):
    """`model` itself in float32, else a float32 copy with its prompt (a
    prompt trained under mixed precision serves in float32)."""
    if model.compute_dtype == "float32":
        return model
    import keras_hub

    config = model.backbone.get_config()
    config["dtype"] = "float32"
    backbone = keras_hub.models.T5Backbone.from_config(config)
    backbone.set_weights(model.backbone.get_weights())
    copy = type(model)(
        backbone,
        model.preprocessor,
        prompt_length=model.prompt_length,
        labels=model.labels,
        compile=False,
    )
    copy.set_prompt(model.get_prompt())
    return copy


def _unless_empty(token_ids, compute, empty_shape, dtype):
    """`compute()`, or an empty result for a batch of 0 (KerasHub's
    attention reshapes with -1, which no runtime resolves for 0 rows)."""
    return tf.cond(
        tf.shape(token_ids)[0] > 0,
        compute,
        lambda: tf.zeros(empty_shape, dtype),
    )


class ExportModule(tf.Module):
    """A `PromptedT5Seq2SeqLM`'s forward pass and greedy decoding with the
    prompts of one export, ready to be traced by the exporters.

    `forward` runs the model's own `encode`/`decode` (the KerasHub
    backbone's layers) and `greedy_generate` the model's `generate_step`,
    i.e. keras-prompt's one cached decoding loop, in its portable form (the
    same results through ops every converter takes: `where` cache writes,
    `tf.argmax`). Nothing here re-implements the network. The module tracks
    the backbone's variables and the export's prompts, so a SavedModel of it
    loads with TensorFlow alone. A model running in another dtype (mixed
    precision) is exported through a float32 copy.

    Prompt modes:
    - `"baked"`: one prompt `[P, H]` frozen in.
    - `"runtime"`: the caller passes `prompts` `[B, P, H]`.
    - `"bank"`: `N` prompts `[N, P, H]` frozen in; each example picks one by
      integer task id (`task_ids` `[B]`). Ids outside `[0, N)` are mapped to
      index `N`, outside the bank, so every runtime raises an out-of-bounds
      error instead of returning another task's prompt.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: `[P, H]` array for `"baked"`, `[N, P, H]` for `"bank"`,
            `None` for `"runtime"`.
        end_token_id: the id that ends generation (`</s>`, 1 for T5).

    Example:
    ```python
    module = ExportModule(model, "baked", prompts=model.get_prompt())
    token_ids = module.greedy_generate(
        encoder_ids, encoder_mask, module.baked_prompts(2), max_length=8)
    ```
    """

    def __init__(self, model, mode, prompts=None, end_token_id=1):
        super().__init__(name="keras_prompt_export")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        model = float32_model(model)
        self._handle = _ModelHandle(model)
        # The tf.Variables themselves: the TFLite converter initializes only
        # those, not Keras variables wrapping them.
        self.backbone_variables = [v.value for v in model.backbone.variables]
        self.mode = mode
        self.prompt_length = int(model.prompt_length)
        self.hidden_dim = int(model.hidden_dim)
        self.end_token_id = int(end_token_id)
        self.num_tasks = 0
        if mode == "baked":
            self.prompt = tf.Variable(
                tf.constant(prompts, tf.float32), trainable=False, name="prompt"
            )
            self.num_tasks = 1
        elif mode == "bank":
            self.prompt_bank = tf.Variable(
                tf.constant(prompts, tf.float32),
                trainable=False,
                name="prompt_bank",
            )
            self.num_tasks = int(self.prompt_bank.shape[0])

    @property
    def model(self):
        return self._handle.model

    def baked_prompts(self, batch_size):
        """The baked prompt broadcast to `[batch_size, P, H]`."""
        return tf.broadcast_to(
            tf.expand_dims(self.prompt, 0),
            tf.stack([batch_size, self.prompt_length, self.hidden_dim]),
        )

    def bank_prompts(self, task_ids):
        """Each example's prompt from the bank by integer id; out-of-range
        (including negative) ids go to index `num_tasks`, which is out of
        bounds in every runtime, so they fail loudly."""
        task_ids = tf.cast(task_ids, tf.int32)
        valid = tf.logical_and(task_ids >= 0, task_ids < self.num_tasks)
        safe_ids = tf.where(
            valid, task_ids, tf.fill(tf.shape(task_ids), self.num_tasks)
        )
        return tf.gather(self.prompt_bank, safe_ids)

    def forward(
        self,
        encoder_token_ids,
        encoder_padding_mask,
        decoder_token_ids,
        decoder_padding_mask,
        prompts,
    ):
        """Teacher-forced logits float32 `[B, T, V]` (the model's own
        `encode` and `decode`)."""
        model = self.model

        def logits():
            encoder_outputs, encoder_mask = model.encode(
                tf.cast(encoder_token_ids, tf.int32),
                tf.cast(encoder_padding_mask, tf.int32),
                prompts=prompts,
                training=False,
            )
            return model.decode(
                encoder_outputs,
                encoder_mask,
                tf.cast(decoder_token_ids, tf.int32),
                tf.cast(decoder_padding_mask, tf.int32),
                training=False,
            )

        empty = tf.stack(
            [0, tf.shape(decoder_token_ids)[1], model.backbone.vocabulary_size]
        )
        return _unless_empty(encoder_token_ids, logits, empty, tf.float32)

    def greedy_generate(
        self, encoder_token_ids, encoder_padding_mask, prompts, max_length
    ):
        """Greedy decoding -> token ids int32 `[B, max_length]` through the
        model's `generate_step`.

        Column 0 is the decoder start token (0), as in `model.generate()`.
        Each row stops at its first `</s>` (kept); every later position is 0
        (pad). The loop ends when every row has stopped or `max_length` is
        reached.
        """
        max_length = int(max_length)
        # Static when the graph has a fixed batch (TFLite), so that the
        # decoding loop's variables keep one shape.
        batch_size = encoder_token_ids.shape[0] or tf.shape(encoder_token_ids)[0]

        def token_ids():
            start = tf.zeros(tf.stack([batch_size, max_length]), tf.int32)
            first = tf.expand_dims(tf.equal(tf.range(max_length), 0), 0)
            outputs = self.model.generate_step(
                {
                    "encoder_token_ids": tf.cast(encoder_token_ids, tf.int32),
                    "encoder_padding_mask": tf.cast(
                        encoder_padding_mask, tf.int32
                    ),
                    "decoder_token_ids": start,
                    "decoder_padding_mask": tf.tile(first, [batch_size, 1]),
                    "prompts": prompts,
                },
                stop_token_ids=(self.end_token_id,),
                next_token=functools.partial(greedy_next_token, portable=True),
                portable=True,
            )
            return outputs["decoder_token_ids"]

        empty = tf.stack([0, max_length])
        return _unless_empty(encoder_token_ids, token_ids, empty, tf.int32)
