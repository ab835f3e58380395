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
    config = model.backbone.get_config()
    config["dtype"] = "float32"
    backbone = type(model.backbone).from_config(config)
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


def _with_a_row(tensors):
    """`tensors` (sharing their batch axis) with one zero row appended when
    the batch is empty, and the real batch size.

    KerasHub's attention reshapes with -1, which no runtime resolves for 0
    rows; the dummy row is computed and dropped (`[:batch_size]`), with
    plain ops every converter takes (no conditional). A graph with a fixed
    batch (TFLite) is left as it is."""
    if tensors[0].shape[0]:
        return tensors, tensors[0].shape[0]
    batch_size = tf.shape(tensors[0])[0]
    missing = tf.maximum(1 - batch_size, 0)
    padded = [
        tf.concat(
            [
                tensor,
                tf.zeros(
                    tf.concat([[missing], tf.shape(tensor)[1:]], 0), tensor.dtype
                ),
            ],
            0,
        )
        for tensor in tensors
    ]
    return padded, batch_size


class ExportModule(tf.Module):
    """A `PromptedT5Seq2SeqLM`'s forward pass and greedy decoding with the
    prompts of one export, ready to be traced by the exporters.

    `forward` runs the model's own `encode`/`decode` (the KerasHub
    backbone's layers) and `greedy_generate` the model's `generate_step`,
    i.e. keras-prompt's one cached decoding loop, in its portable form (the
    same results through ops every converter takes: scatter cache writes,
    `tf.argmax`). Nothing here re-implements the network. The module tracks
    the backbone's variables and the export's prompts, so a SavedModel of it
    loads with TensorFlow alone. A model running in another dtype (mixed
    precision) is exported through a float32 copy.

    Prompt modes:
    - `"baked"`: one prompt `[P, H]` frozen in.
    - `"runtime"`: the caller passes `prompts` `[B, P, H]`.
    - `"bank"`: `N` prompts `[N, P, H]` frozen in; each example picks one by
      integer task id (`task_ids` `[B]`, checked by the caller: see
      `input_checks`).

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
        self.vocabulary_size = int(model.backbone.vocabulary_size)
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
        """Each example's prompt from the bank by integer id, in
        `[0, num_tasks)` (the SavedModel asserts it; the plain graphs
        replace bad ids and answer those rows apart)."""
        return tf.gather(self.prompt_bank, tf.cast(task_ids, tf.int32))

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
        inputs, batch_size = _with_a_row([
            tf.cast(encoder_token_ids, tf.int32),
            tf.cast(encoder_padding_mask, tf.int32),
            tf.cast(decoder_token_ids, tf.int32),
            tf.cast(decoder_padding_mask, tf.int32),
            tf.cast(prompts, tf.float32),
        ])
        encoder_outputs, encoder_mask = model.encode(
            inputs[0], inputs[1], prompts=inputs[4], training=False
        )
        logits = model.decode(
            encoder_outputs, encoder_mask, inputs[2], inputs[3], training=False
        )
        return logits[:batch_size]

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
        inputs, batch_size = _with_a_row([
            tf.cast(encoder_token_ids, tf.int32),
            tf.cast(encoder_padding_mask, tf.int32),
            tf.cast(prompts, tf.float32),
        ])
        # Static when the graph has a fixed batch (TFLite), so that the
        # decoding loop's variables keep one shape.
        rows = inputs[0].shape[0] or tf.shape(inputs[0])[0]
        start = tf.zeros(tf.stack([rows, max_length]), tf.int32)
        first = tf.expand_dims(tf.equal(tf.range(max_length), 0), 0)
        outputs = self.model.generate_step(
            {
                "encoder_token_ids": inputs[0],
                "encoder_padding_mask": inputs[1],
                "decoder_token_ids": start,
                "decoder_padding_mask": tf.tile(first, [rows, 1]),
                "prompts": inputs[2],
            },
            stop_token_ids=(self.end_token_id,),
            next_token=functools.partial(greedy_next_token, portable=True),
            portable=True,
        )
        return outputs["decoder_token_ids"][:batch_size]
