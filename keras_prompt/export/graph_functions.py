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


def graph_function(core, graph, max_decode_length, specs, weights=None):
    """A `tf.function` over `specs` computing `{"logits"}` or
    `{"token_ids"}` with plain TF ops (no asserts, no strings).

    With `weights` (Keras variables), the function takes their values as
    extra trailing inputs named `weight_<i>` and reads them in place of the
    variables (`keras.StatelessScope`), so the traced graph holds no weights
    (see `onnx_export`).
    """
    names = [spec.name for spec in specs]

    def compute(named):
        batch_size = tf.shape(named["encoder_token_ids"])[0]
        if core.mode == "baked":
            prompts = core.baked_prompts(batch_size)
        elif core.mode == "bank":
            prompts = core.bank_prompts(named["task"])
        else:
            prompts = named["prompts"]
        if graph == "forward":
            logits = core.forward(
                named["encoder_token_ids"],
                named["encoder_padding_mask"],
                named["decoder_token_ids"],
                named["decoder_padding_mask"],
                prompts,
            )
            return {"logits": logits}
        token_ids = core.greedy_generate(
            named["encoder_token_ids"],
            named["encoder_padding_mask"],
            prompts,
            max_decode_length,
        )
        return {"token_ids": token_ids}

    def run(*args):
        named = dict(zip(names, args[: len(names)]))
        if weights is None:
            return compute(named)
        import keras

        mapping = list(zip(weights, args[len(names) :]))
        with keras.StatelessScope(state_mapping=mapping):
            return compute(named)

    signature = list(specs) + [
        tf.TensorSpec(weight.shape, weight.dtype, name=f"weight_{index}")
        for index, weight in enumerate(weights or [])
    ]
    # No autograph: the model's control flow is explicit (`while_loop`), and
    # converting every layer's Python source only slows the trace down.
    return tf.function(run, input_signature=signature, autograph=False)
