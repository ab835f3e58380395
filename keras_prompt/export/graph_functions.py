"""The plain-ops graphs shared by the ONNX and TFLite exporters.

Unlike the SavedModel signatures they have no string inputs and no asserts
(neither converter keeps them): `task` is an int32 id, and a row with a bad
input gets a defined answer (token ids the pad id, logits NaN) and its
reasons in the `invalid_inputs` output (see `input_checks`), never another
row's prompt. T5 models and decoder-only models (`CausalExportModule`) share
them; only the token inputs differ.
"""

import numpy as np
import tensorflow as tf

from keras_prompt.export.input_checks import RowProblems

GRAPHS = ("forward", "generate")
INVALID_INPUTS = "invalid_inputs"
# A decoder-only model's generate graph takes `token_ids`: its result needs
# another name (ONNX names every value once; tf2onnx fails on the clash).
CAUSAL_GENERATE_OUTPUT = "new_token_ids"


def result_name(graph, causal=False):
    """The name of a plain graph's result."""
    if graph == "forward":
        return "logits"
    return CAUSAL_GENERATE_OUTPUT if causal else "token_ids"


def output_names(graph, causal=False):
    """The outputs of a plain graph: its result and `invalid_inputs`."""
    return [result_name(graph, causal), INVALID_INPUTS]


def check_graph_argument(graph):
    if graph not in GRAPHS:
        raise ValueError(
            f"`graph` must be 'forward' or 'generate'; got {graph!r}."
        )


def check_quantize_argument(quantize):
    """Refuses a `quantize` other than `None` (float32) and `"int8"`."""
    if quantize is None or (isinstance(quantize, str) and quantize == "int8"):
        return
    raise ValueError(
        f"`quantize` must be None (float32, the default) or 'int8' (dynamic "
        f"int8 weights for CPU serving); got {quantize!r}."
    )


def is_causal_core(core):
    """Whether `core` is a decoder-only model's `CausalExportModule`."""
    from keras_prompt.export.causal_export_module import CausalExportModule

    return isinstance(core, CausalExportModule)


def io_specs(
    core,
    graph,
    batch_size=None,
    encoder_length=None,
    decoder_length=None,
    sequence_length=None,
):
    """Input `tf.TensorSpec`s of a forward/generate graph (shared with
    TFLite). In ONNX and TFLite `task` is an int32 task id.

    A T5 graph takes `encoder_token_ids` / `encoder_padding_mask`
    (`[batch_size, encoder_length]`) and, for `"forward"`, the decoder's
    (`[batch_size, decoder_length]`); a decoder-only one `token_ids` /
    `padding_mask` (`[batch_size, sequence_length]`) for both graphs. Then
    `task` (bank) or `prompts` (runtime). `None` dimensions are dynamic.
    """
    if is_causal_core(core):
        pairs = [("token_ids", "padding_mask", sequence_length)]
    else:
        pairs = [("encoder_token_ids", "encoder_padding_mask", encoder_length)]
        if graph == "forward":
            pairs.append(
                ("decoder_token_ids", "decoder_padding_mask", decoder_length)
            )
    specs = [
        tf.TensorSpec([batch_size, length], tf.int32, name=name)
        for ids_name, mask_name, length in pairs
        for name in (ids_name, mask_name)
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


def check_family_arguments(causal, causal_only, t5_only):
    """Refuses the arguments that do not apply to the model's kind.

    Args:
        causal: whether the model is decoder-only.
        causal_only: dict name -> value of the decoder-only arguments.
        t5_only: dict name -> value of the T5-only arguments.

    Raises:
        ValueError: naming each given argument of the other kind.
    """
    wrong = t5_only if causal else causal_only
    given = [name for name, value in wrong.items() if value is not None]
    if not given:
        return
    if causal:
        raise ValueError(
            f"{', '.join(given)} apply to T5 models; a decoder-only model "
            "(PromptedCausalLM) has one sequence of `token_ids`: pass "
            "`sequence_length` (its length) and `max_new_tokens` instead."
        )
    raise ValueError(
        f"{', '.join(given)} apply to decoder-only models (PromptedCausalLM); "
        "a T5 export generates `max_decode_length` decoder positions."
    )


def generation_lengths(
    core, graph, max_decode_length, max_new_tokens=None, sequence_length=None,
    length_name="sequence_length",
):
    """The length `graph_function` takes and the lengths an export records.

    T5: `max_decode_length`. Decoder-only: `max_new_tokens` (default
    `max_decode_length - 1`, the new tokens of as many T5 decoder
    positions); a backbone with learned positions (GPT-2) must fit the
    prompt, the input columns (`sequence_length`, at least one when the
    graph's length is dynamic) and the new tokens of `"generate"`.
    `length_name` is what the caller calls `sequence_length` (the errors'
    fixes name it).

    Returns:
        `(length, {name: value})`.

    Raises:
        ValueError: a length below 1, or more positions than the backbone
            has (naming the numbers and what to lower).
    """
    if not is_causal_core(core):
        return int(max_decode_length), {
            "max_decode_length": int(max_decode_length)
        }
    new_tokens = (
        int(max_decode_length) - 1
        if max_new_tokens is None
        else int(max_new_tokens)
    )
    if graph == "generate" and new_tokens < 1:
        raise ValueError(
            f"`max_new_tokens` must be >= 1; got {new_tokens} (from "
            f"max_new_tokens={max_new_tokens}, "
            f"max_decode_length={max_decode_length})."
        )
    recorded = {"max_new_tokens": new_tokens} if graph == "generate" else {}
    limit = core.max_sequence_length
    if limit is None:
        return new_tokens, recorded
    generated = new_tokens if graph == "generate" else 0
    columns = int(sequence_length) if sequence_length else 1
    needed = core.prompt_length + columns + generated
    if needed > limit:
        room = limit - core.prompt_length
        fixes = []
        if sequence_length and room - generated >= 1:
            fixes.append(f"{length_name} <= {room - generated}")
        if graph == "generate" and room - columns >= 1:
            fixes.append(f"max_new_tokens <= {room - columns}")
        fixes.append("a shorter prompt")
        raise ValueError(
            f"A prompt of {core.prompt_length} positions, "
            + (f"{length_name}={columns}" if sequence_length else "an input")
            + (f" and {new_tokens} new tokens" if generated else "")
            + f" need {needed} positions; "
            f"{type(core.model.backbone).__name__} has {limit} learned "
            f"positions. Use {' or '.join(fixes)}."
        )
    # Clients of a dynamic-length graph need the longest input it takes.
    recorded["max_token_columns"] = limit - core.prompt_length - generated
    return new_tokens, recorded


def smoke_feed(specs):
    """A small valid feed for `specs` (dynamic dimensions of size 2): token
    ids 3, masks of ones, task 0, zero prompts."""
    feed = {}
    for spec in specs:
        shape = [2 if dim is None else dim for dim in spec.shape.as_list()]
        if spec.dtype == tf.float32:
            feed[spec.name] = np.zeros(shape, np.float32)
        elif spec.name == "task":
            feed[spec.name] = np.zeros(shape, np.int32)
        elif spec.name.endswith("padding_mask"):
            feed[spec.name] = np.ones(shape, np.int32)
        else:
            feed[spec.name] = np.full(shape, 3, np.int32)
    return feed


def graph_function(core, graph, max_decode_length, specs, weights=None):
    """A `tf.function` over `specs` computing `{"logits"}` or
    `{"token_ids"}` (`{"new_token_ids"}` for a decoder-only model: see
    `result_name`), plus `invalid_inputs` (int32 `[B]`, 0 for a valid row,
    else the sum of its `input_checks` flags), with plain TF ops (no
    asserts, no strings).

    A bad row's logits are NaN and its token ids the pad id (0 for T5).

    Args:
        core: an `ExportModule` (T5) or `CausalExportModule`.
        graph: `"forward"` or `"generate"`.
        max_decode_length: generate: T5's decoder length, a decoder-only
            model's new tokens (`max_new_tokens`).
        specs: the inputs, from `io_specs`.
        weights: optional Keras variables. The function then takes their
            values as extra trailing inputs named `weight_<i>` and reads
            them in place of the variables (`keras.StatelessScope`), so the
            traced graph holds no weights (see `onnx_export`).
    """
    names = [spec.name for spec in specs]
    causal = is_causal_core(core)
    if causal:
        token_inputs = ("token_ids", "padding_mask")
    else:
        token_inputs = ("encoder_token_ids", "encoder_padding_mask")
    pad_id = core.pad_id if causal else 0

    def compute(named):
        problems = RowProblems(named, core.vocabulary_size, core.num_tasks)
        named = problems.inputs
        batch_size = tf.shape(named[token_inputs[0]])[0]
        if core.mode == "baked":
            prompts = core.baked_prompts(batch_size)
        elif core.mode == "bank":
            prompts = core.bank_prompts(named["task"])
        else:
            prompts = named["prompts"]
        token_ids, padding_mask = (named[name] for name in token_inputs)
        if graph == "forward":
            decoder = (
                []
                if causal
                else [named["decoder_token_ids"], named["decoder_padding_mask"]]
            )
            logits = core.forward(token_ids, padding_mask, *decoder, prompts)
            result = problems.answer(logits, float("nan"))
        else:
            generated = core.greedy_generate(
                token_ids, padding_mask, prompts, max_decode_length
            )
            result = problems.answer(generated, pad_id)
        return {
            result_name(graph, causal): result,
            INVALID_INPUTS: problems.flags,
        }

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
