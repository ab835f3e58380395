"""The plain-ops graphs shared by the ONNX and TFLite exporters.

Unlike the SavedModel signatures they have no string inputs and no asserts
(neither converter keeps them): `task` is an int32 id, and ids outside the
bank are mapped to an out-of-bounds index so the runtime's `Gather` fails.
"""

import tensorflow as tf

GRAPHS = ("forward", "generate")


def check_graph_argument(graph):
    if graph not in GRAPHS:
        raise ValueError(
            f"`graph` must be 'forward' or 'generate'; got {graph!r}."
        )


def io_specs(
    core, graph, batch_size=None, encoder_length=None, decoder_length=None
):
    """Input `tf.TensorSpec`s of a forward/generate graph (shared with
    TFLite). In ONNX and TFLite `task` is an int32 task id."""
    specs = [
        tf.TensorSpec(
            [batch_size, encoder_length], tf.int32, name="encoder_token_ids"
        ),
        tf.TensorSpec(
            [batch_size, encoder_length], tf.int32, name="encoder_padding_mask"
        ),
    ]
    if graph == "forward":
        specs += [
            tf.TensorSpec(
                [batch_size, decoder_length], tf.int32, name="decoder_token_ids"
            ),
            tf.TensorSpec(
                [batch_size, decoder_length],
                tf.int32,
                name="decoder_padding_mask",
            ),
        ]
    if core.mode == "bank":
        specs.append(tf.TensorSpec([batch_size], tf.int32, name="task"))
    elif core.mode == "runtime":
        specs.append(
            tf.TensorSpec(
                [batch_size, core.prompt_length, core.hidden_dim],
                tf.float32,
                name="prompts",
            )
        )
    return specs


def graph_function(core, graph, max_decode_length, specs):
    """A `tf.function` over `specs` computing `{"logits"}` or
    `{"token_ids"}` with plain TF ops (no asserts, no strings)."""

    def prompts_for(batch_size, extra):
        if core.mode == "baked":
            return core.baked_prompts(batch_size)
        if core.mode == "bank":
            return core.bank_prompts(extra)
        return extra

    if graph == "forward":

        def forward(
            encoder_token_ids,
            encoder_padding_mask,
            decoder_token_ids,
            decoder_padding_mask,
            extra=None,
        ):
            prompts = prompts_for(tf.shape(encoder_token_ids)[0], extra)
            logits = core.forward(
                encoder_token_ids,
                encoder_padding_mask,
                decoder_token_ids,
                decoder_padding_mask,
                prompts,
            )
            return {"logits": logits}

        fn = forward
    else:

        def generate(encoder_token_ids, encoder_padding_mask, extra=None):
            prompts = prompts_for(tf.shape(encoder_token_ids)[0], extra)
            token_ids = core.greedy_generate(
                encoder_token_ids,
                encoder_padding_mask,
                prompts,
                max_decode_length,
            )
            return {"token_ids": token_ids}

        fn = generate
    if core.mode == "baked":
        return tf.function(lambda *args: fn(*args), input_signature=specs)
    return tf.function(fn, input_signature=specs)
