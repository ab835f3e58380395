"""The plain-ops graphs shared by the ONNX and TFLite exporters.

Unlike the SavedModel signatures they have no string inputs and no asserts
(neither converter keeps them): `task` is an int32 id, and a row with a bad
input gets a defined answer (token ids 0, logits NaN) and its reasons in the
`invalid_inputs` output (see `input_checks`), never another row's prompt.
"""

import tensorflow as tf

from keras_prompt.export.input_checks import RowProblems

GRAPHS = ("forward", "generate")
INVALID_INPUTS = "invalid_inputs"


def output_names(graph):
    """The outputs of a plain graph: its result and `invalid_inputs`."""
    return ["logits" if graph == "forward" else "token_ids", INVALID_INPUTS]


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
    `{"token_ids"}`, plus `invalid_inputs` (int32 `[B]`, 0 for a valid row,
    else the sum of its `input_checks` flags), with plain TF ops (no
    asserts, no strings).

    With `weights` (Keras variables), the function takes their values as
    extra trailing inputs named `weight_<i>` and reads them in place of the
    variables (`keras.StatelessScope`), so the traced graph holds no weights
    (see `onnx_export`).
    """
    names = [spec.name for spec in specs]

    def compute(named):
        problems = RowProblems(named, core.vocabulary_size, core.num_tasks)
        named = problems.inputs
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
            result = {"logits": problems.answer(logits, float("nan"))}
        else:
            token_ids = core.greedy_generate(
                named["encoder_token_ids"],
                named["encoder_padding_mask"],
                prompts,
                max_decode_length,
            )
            result = {"token_ids": problems.answer(token_ids, 0)}
        result[INVALID_INPUTS] = problems.flags
        return result

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
