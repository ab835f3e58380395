"""ONNX export through tf2onnx, validated with onnx.checker and onnxruntime."""

import base64
import contextlib
import logging
import os

import numpy as np

from keras_prompt.export import metadata as metadata_lib
from keras_prompt.export.atomic import atomic_file
from keras_prompt.export.export_error import ExportError
from keras_prompt.export.export_prompts import ExportPrompts
from keras_prompt.export.graph_functions import check_family_arguments
from keras_prompt.export.graph_functions import check_graph_argument
from keras_prompt.export.graph_functions import check_quantize_argument
from keras_prompt.export.graph_functions import generation_lengths
from keras_prompt.export.graph_functions import graph_function
from keras_prompt.export.graph_functions import io_specs
from keras_prompt.export.graph_functions import output_names
from keras_prompt.export.graph_functions import smoke_feed
from keras_prompt.export.input_checks import describe_flags
from keras_prompt.export.onnx_loop_invariants import hoist_loop_invariants
from keras_prompt.export.onnx_subgraphs import all_nodes

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Metadata keys stored in the ONNX file's `metadata_props`.
METADATA_KEY = "keras_prompt.export"
SENTENCEPIECE_KEY = "keras_prompt.sentencepiece_model"
# The SentencePiece model that renders T5's sentinels (for decoding).
DETOKENIZER_KEY = "keras_prompt.detokenizer_model"
_STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def _weights_to_initializers(graph, weights):
    """Graph inputs `weight_<i>` -> initializers holding the weights."""
    from onnx import numpy_helper

    values = {f"weight_{i}": weight for i, weight in enumerate(weights)}
    for graph_input in list(graph.input):
        if graph_input.name in values:
            value = np.asarray(values[graph_input.name].numpy())
            graph.initializer.append(
                numpy_helper.from_array(value, name=graph_input.name)
            )
            graph.input.remove(graph_input)


@contextlib.contextmanager
def _tf2onnx_without_graph_copies():
    """tf2onnx deep-copies the whole graph, weights included, before each of
    its ~36 optimizer passes so that it can undo a failing one; for a
    t5-small-sized model that is most of the export time. Without the copies
    a failing pass fails the conversion, which is then an `ExportError`."""
    previous = os.environ.get("TF2ONNX_CATCH_ERRORS")
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TF2ONNX_CATCH_ERRORS")
        else:
            os.environ["TF2ONNX_CATCH_ERRORS"] = previous


def validate_onnx(
    path, expected_inputs, expected_outputs, smoke_feed=None, display_name=None
):
    """Validates an ONNX file; raises `ExportError` on any problem.

    Checks: `onnx.checker` (full check with shape inference), no op outside
    the standard ONNX domains, the graph inputs/outputs are exactly the
    expected names (tf2onnx turns a captured eager tensor into an extra,
    dangling graph input), an onnxruntime session opens, and (optionally) a
    smoke run succeeds.
    """
    import onnx
    import onnxruntime as ort

    name = display_name or path
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:
        raise ExportError(f"onnx.checker rejected '{name}': {error}") from error
    foreign = sorted(
        {
            f"{node.domain or 'ai.onnx'}::{node.op_type}"
            for node in all_nodes(model.graph)
            if node.domain not in _STANDARD_DOMAINS
        }
    )
    if foreign:
        raise ExportError(
            f"'{name}' contains ops outside standard ONNX ({', '.join(foreign)}): "
            "tf2onnx could not convert them."
        )
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if sorted(inputs) != sorted(expected_inputs):
        extra = sorted(set(inputs) - set(expected_inputs))
        missing = sorted(set(expected_inputs) - set(inputs))
        raise ExportError(
            f"'{name}' has graph inputs {inputs}, expected {list(expected_inputs)}"
            + (
                f"; dangling inputs {extra} (a tensor captured by the traced "
                "function instead of being a constant)"
                if extra
                else ""
            )
            + (f"; missing {missing}" if missing else "")
            + "."
        )
    outputs = [o.name for o in model.graph.output]
    if sorted(outputs) != sorted(expected_outputs):
        raise ExportError(
            f"'{name}' has graph outputs {outputs}, expected "
            f"{list(expected_outputs)}."
        )
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        if smoke_feed is not None:
            session.run(None, smoke_feed)
    except Exception as error:
        raise ExportError(
            f"onnxruntime cannot run '{name}': {error}"
        ) from error


def export_onnx(
    model,
    path,
    *,
    mode,
    prompts=None,
    graph="forward",
    max_decode_length=32,
    opset=DEFAULT_OPSET,
    max_new_tokens=None,
    quantize=None,
):
    """Exports the forward pass or greedy decoding of a prompted T5 or
    decoder-only model to ONNX.

    Tokenization stays in the client (SentencePiece does not convert to
    ONNX); a T5 file carries the tokenizer's SentencePiece model and every
    file a JSON description (task names, lengths, special ids) in its
    `metadata_props`, so `export/onnx_client.py` needs only `onnxruntime`
    and `sentencepiece` for T5.

    T5 inputs (`B`, `S`, `T` dynamic; `P`, `H` fixed):
    - `graph="forward"`: `encoder_token_ids`, `encoder_padding_mask`,
      `decoder_token_ids`, `decoder_padding_mask` (int32), plus `task`
      (int32 `[B]`, mode `"bank"`: a prompt id, which is the task id of a
      task's first prompt; a bank with ensembles lists each task's prompt
      ids in the description's `task_prompt_ids`) or `prompts` (float32
      `[B, P, H]`, mode `"runtime"`) -> `logits` float32 `[B, T, V]`.
    - `graph="generate"`: `encoder_token_ids`, `encoder_padding_mask`
      (+ `task` | `prompts`) -> `token_ids` int32 `[B, max_decode_length]`
      (column 0 is the start token 0; 0 after each row's first `</s>`).

    Decoder-only inputs (`keras_prompt.PromptedCausalLM`; `N` =
    `max_new_tokens`): `token_ids`, `padding_mask` (int32 `[B, S]`,
    right-padded: each mask row is ones, at least one, then zeros) plus
    `task` | `prompts` as above, for both graphs:
    - `graph="forward"` -> `logits` float32 `[B, S, V]` (the input
      positions'; the prompt's are not returned).
    - `graph="generate"` -> `new_token_ids` int32 `[B, N]` (not
      `token_ids`, the input's name: ONNX names each value once): each
      row's greedy continuation after its own last given token, ending at
      its first end token (kept), then the pad id. A GPT-2 backbone
      (learned positions) takes at most `max_token_columns` (in the
      description) input columns; onnxruntime fails a longer request.

    Both graphs also output `invalid_inputs` int32 `[B]`: 0 for a valid row;
    for a row with a token id outside `[0, V)` (1), a padding-mask value
    other than 0/1 (2), a task id outside `[0, num_tasks)` or no task for
    it (4), a NaN/infinite prompt or none for it (8), or (decoder-only) a
    mask that is not right-padded (16), the sum of those flags. Such a
    row's generated ids are all the pad id (0 for T5) and its `logits` NaN;
    the other rows are unaffected, and no row ever runs with another task's
    prompt or without one. The clients in `export/` check their inputs
    first and name the bad one.

    `quantize="int8"` (opt-in, for CPU serving) writes the graph with
    dynamic int8 quantization of its weight matmuls, those of the decoding
    loop and a tied LM head included: int8 weights (7-bit range) with one
    scale per output column, activations quantized at run time with one
    scale per tensor (onnxruntime's `quantize_dynamic`; see
    `onnx_quantization`). Embedding lookups, norms and attention stay
    float32. Inputs, outputs and `invalid_inputs` are those of the float32
    graph; outputs are approximate: logits move by a few hundredths on
    average, a near-tie can pick another token, and a row's result can move
    slightly with the other rows of its batch. The description records
    `"quantization": "int8"` (`null` for float32).

    The file is written atomically and only after it passes `onnx.checker`,
    has exactly the expected inputs (a captured eager tensor would appear
    as a dangling extra input), only standard ONNX ops, and opens and runs
    in an onnxruntime session; otherwise `ExportError` is raised and
    nothing is written.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM` or
            `keras_prompt.PromptedCausalLM`.
        path: destination `.onnx` file.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: as in `export_saved_model`.
        graph: `"forward"` or `"generate"`.
        max_decode_length: T5: decoder length of generated sequences
            (generate). Decoder-only: `max_new_tokens` defaults to
            `max_decode_length - 1`.
        opset: ONNX opset.
        max_new_tokens: decoder-only models: tokens generated per row
            (generate); refused for T5.
        quantize: `None` (float32, the default) or `"int8"`.

    Returns:
        `path`.

    Raises:
        ValueError: an argument of the other model kind, a `quantize`
            other than `None`/`"int8"`, or (GPT-2) a prompt and
            `max_new_tokens` beyond the backbone's positions.
        ExportError: the conversion, the quantization or the validation
            failed.

    Example:
    ```python
    keras_prompt.export.export_onnx(
        model, "bank_generate.onnx", mode="bank",
        prompts={"rte": "rte.safetensors", "sst2": "sst2.safetensors"},
        graph="generate", max_decode_length=8,
    )
    # The same graph with int8 weight matmuls, for CPU serving.
    keras_prompt.export.export_onnx(
        model, "bank_generate_int8.onnx", mode="bank",
        prompts={"rte": "rte.safetensors", "sst2": "sst2.safetensors"},
        graph="generate", max_decode_length=8, quantize="int8",
    )
    ```
    """
    import onnx
    import tf2onnx

    # Erfc (exact GELU), SelectV2, and XlaDynamicUpdateSlice: the cache
    # writes of the decoder-only models' cached layers.
    from keras_prompt.export.onnx_op_handlers import CUSTOM_OP_HANDLERS
    from keras_prompt.export.onnx_quantization import quantize_onnx_model

    check_graph_argument(graph)
    check_quantize_argument(quantize)
    causal = metadata_lib.is_causal(model)
    check_family_arguments(causal, {"max_new_tokens": max_new_tokens}, {})
    resolved = ExportPrompts.from_model(model, mode, prompts)
    core = resolved.build_module(model)
    length, lengths = generation_lengths(
        core, graph, max_decode_length, max_new_tokens
    )
    specs = io_specs(core, graph)
    # The weights enter as inputs and become initializers afterwards: with
    # them in the traced graph, tf2onnx re-serializes them in each of its
    # optimizer passes, most of a large model's export time.
    weights = list(core.model.backbone.weights)
    function = graph_function(core, graph, length, specs, weights=weights)
    outputs = output_names(graph, causal)
    description = metadata_lib.export_metadata(
        model,
        resolved,
        "onnx",
        graph=graph,
        inputs=[spec.name for spec in specs],
        outputs=outputs,
        task_input="int32 task id" if mode == "bank" else None,
        quantization=quantize,
        **lengths,
    )
    description["invalid_inputs_flags"] = describe_flags()
    path = os.path.abspath(os.fspath(path))
    with atomic_file(path) as temp_path:
        try:
            with _tf2onnx_without_graph_copies():
                model_proto, _ = tf2onnx.convert.from_function(
                    function,
                    input_signature=function.input_signature,
                    opset=int(opset),
                    custom_op_handlers=CUSTOM_OP_HANDLERS,
                )
        except Exception as error:
            raise ExportError(
                f"tf2onnx failed to convert the {graph} graph: {error}"
            ) from error
        _weights_to_initializers(model_proto.graph, weights)
        hoist_loop_invariants(model_proto.graph)
        props = {METADATA_KEY: metadata_lib.dumps(description)}
        tokenizer = metadata_lib.tokenizer_of(model)
        # T5's SentencePiece models; a decoder-only model's client
        # tokenizes with the model's own KerasHub tokenizer.
        if tokenizer is not None and not causal:
            props[SENTENCEPIECE_KEY] = base64.b64encode(tokenizer.proto).decode(
                "ascii"
            )
            props[DETOKENIZER_KEY] = base64.b64encode(
                model.detokenizer.detokenizer_proto
            ).decode("ascii")
        onnx.helper.set_model_props(model_proto, props)
        if quantize:
            quantize_onnx_model(model_proto, temp_path, display_name=path)
        else:
            onnx.save(model_proto, temp_path)
        validate_onnx(
            temp_path,
            [spec.name for spec in specs],
            outputs,
            smoke_feed=smoke_feed(specs),
            display_name=path,
        )
    logger.info(
        "Exported %s-mode %sONNX %s graph to %s.",
        mode,
        "int8 " if quantize else "",
        graph,
        path,
    )
    return path
