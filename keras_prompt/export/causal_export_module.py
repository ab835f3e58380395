"""The trackable object the exporters trace for a decoder-only model."""

import functools

import tensorflow as tf

from keras_prompt.export.export_module import ExportModule
from keras_prompt.export.export_module import _with_a_row
from keras_prompt.models.decoding_loop import greedy_next_token


class CausalExportModule(ExportModule):
    """A `PromptedCausalLM`'s forward pass and greedy continuation with the
    prompts of one export, ready to be traced by the exporters.

    `forward` runs the model's own `prompted_logits` and `greedy_generate`
    its `generate_step` (the backbone's cached layers in keras-prompt's one
    decoding loop, the prompt in the cache) with greedy choices by
    `tf.argmax`. Prompt modes and variables are those of `ExportModule`.

    Args:
        model: a `keras_prompt.PromptedCausalLM`.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: `[P, H]` array for `"baked"`, `[N, P, H]` for `"bank"`,
            `None` for `"runtime"`.
        end_token_id: the id that ends generation (the tokenizer's end
            token).

    Example:
    ```python
    module = CausalExportModule(model, "baked", prompts=model.get_prompt(),
                                end_token_id=50256)
    new_ids = module.greedy_generate(
        token_ids, padding_mask, module.baked_prompts(2), max_new_tokens=4)
    ```
    """

    def __init__(self, model, mode, prompts=None, end_token_id=1):
        super().__init__(model, mode, prompts=prompts, end_token_id=end_token_id)
        self.pad_id = int(self.model.pad_id())
        self.max_sequence_length = self.model.family.max_sequence_length

    def forward(self, token_ids, padding_mask, prompts):
        """Logits float32 `[B, L, V]` of the input positions (the model's
        `prompted_logits`)."""
        inputs, batch_size = _with_a_row([
            tf.cast(token_ids, tf.int32),
            tf.cast(padding_mask, tf.int32),
            tf.cast(prompts, tf.float32),
        ])
        logits = self.model.prompted_logits(
            inputs[0], inputs[1], inputs[2], training=False
        )
        return logits[:batch_size]

    def greedy_generate(self, token_ids, padding_mask, prompts, max_new_tokens):
        """Greedy continuation -> int32 `[B, max_new_tokens]`: the tokens
        each row generates after its last given one (right-padded rows each
        continue after their own), as `model.generate(max_new_tokens=N)`
        with greedy sampling. A row stops at its first end token (kept);
        every later position holds the pad id.
        """
        max_new_tokens = int(max_new_tokens)
        inputs, batch_size = _with_a_row([
            tf.cast(token_ids, tf.int32),
            tf.cast(padding_mask, tf.int32),
            tf.cast(prompts, tf.float32),
        ])
        token_ids, padding_mask, prompts = inputs
        # Static when the graph has a fixed batch (TFLite), so that the
        # decoding loop's variables keep one shape.
        rows = token_ids.shape[0] or tf.shape(token_ids)[0]
        room = tf.zeros(tf.stack([rows, max_new_tokens]), tf.int32)
        lengths = tf.reduce_sum(padding_mask, axis=1)
        outputs = self.model.generate_step(
            {
                "token_ids": tf.concat([token_ids, room], 1),
                "padding_mask": tf.concat([padding_mask, room], 1),
                "prompts": prompts,
                "end_positions": lengths + max_new_tokens - 1,
            },
            stop_token_ids=(self.end_token_id,),
            next_token=functools.partial(greedy_next_token, portable=True),
            portable=True,
        )
        positions = lengths[:, None] + tf.range(max_new_tokens)[None, :]
        new_ids = tf.gather(outputs["token_ids"], positions, batch_dims=1)
        return new_ids[:batch_size]
