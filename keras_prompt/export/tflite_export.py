"""LiteRT / TFLite export: fixed-shape forward and decode graphs, builtin ops
only."""

import base64
import logging
import os

import tensorflow as tf

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

logger = logging.getLogger(__name__)

METADATA_SUFFIX = ".json"


def load_interpreter(model_content=None, model_path=None):
    """A LiteRT interpreter (`ai_edge_litert`, which replaces the deprecated
    `tf.lite.Interpreter`)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content, model_path=model_path)


def export_tflite(
    model,
    path,
    *,
    mode,
    prompts=None,
    graph="forward",
    batch_size=1,
    encoder_sequence_length=None,
    decoder_sequence_length=None,
    max_decode_length=32,
    sequence_length=None,
    max_new_tokens=None,
    quantize=None,
):
    """Exports a fixed-shape forward or greedy-decoding graph to LiteRT.

    Every shape is fixed at export time (TFLite rejects the dynamic-shape
    graph) and only `TFLITE_BUILTINS` ops are allowed; the conversion fails
    with `ExportError` otherwise. Input and output names match the ONNX
    export. T5: `encoder_token_ids`, `encoder_padding_mask` (int32 `[batch,
    encoder_sequence_length]`), for `"forward"` also `decoder_token_ids`,
    `decoder_padding_mask` (int32 `[batch, decoder_sequence_length]`), plus
    `task` (int32 `[batch]`, bank) or `prompts` (float32 `[batch, P, H]`,
    runtime); outputs `logits` (float32 `[batch, T, V]`) or `token_ids`
    (int32 `[batch, max_decode_length]`; start token 0 in column 0, 0 after
    each row's first `</s>`), and `invalid_inputs` (int32 `[batch]`): a row
    with a bad token id, mask value, task id or prompt gets token ids 0 /
    NaN logits and its reasons there, as in `export_onnx`.

    A decoder-only model (`keras_prompt.PromptedCausalLM`) takes
    `token_ids`, `padding_mask` (int32 `[batch, sequence_length]`,
    right-padded) plus `task` | `prompts` in both graphs, and outputs
    `logits` (float32 `[batch, sequence_length, V]`) or `new_token_ids`
    (int32 `[batch, max_new_tokens]`, named as in ONNX: each row's greedy
    continuation after its own last given token, ending at its first end
    token (kept), then the pad id), and `invalid_inputs` (a row whose mask
    is not right-padded is flagged 16 and answered with pad ids / NaN
    logits).

    `quantize="int8"` (opt-in, for CPU serving) converts with LiteRT's
    dynamic-range quantization (`tf.lite.Optimize.DEFAULT`, no
    representative dataset): int8 weights, activations quantized at run
    time row by row (a row's result does not depend on the other rows),
    still builtin ops only. The converter keeps weights of fewer than
    1,024 values in float32. Inputs, outputs and `invalid_inputs` are those
    of the float32 graph; outputs are approximate. The description records
    `"quantization": "int8"` (`null` for float32).

    A JSON description (task names, lengths, special ids) is written next
    to the model as `<path>.json`. The model is converted, loaded in an
    interpreter and run once before it is moved into place atomically.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM` or
            `keras_prompt.PromptedCausalLM`.
        path: destination `.tflite` file.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: as in `export_saved_model`.
        graph: `"forward"` or `"generate"`.
        batch_size: fixed batch size.
        encoder_sequence_length: T5: fixed encoder length; defaults to the
            preprocessor's.
        decoder_sequence_length: T5: fixed decoder length of the forward
            graph; defaults to the preprocessor's.
        max_decode_length: T5: decoder length of generated sequences
            (generate). Decoder-only: `max_new_tokens` defaults to
            `max_decode_length - 1`.
        sequence_length: decoder-only models: fixed input columns; defaults
            to the preprocessor's `sequence_length`.
        max_new_tokens: decoder-only models: tokens generated per row
            (generate).
        quantize: `None` (float32, the default) or `"int8"`.

    Returns:
        `path`.

    Raises:
        ValueError: a missing length, an argument of the other model kind,
            a `quantize` other than `None`/`"int8"`, or (GPT-2) a prompt,
            `sequence_length` and `max_new_tokens` beyond the backbone's
            learned positions.
        ExportError: the conversion or its check run failed.

    Example:
    ```python
    keras_prompt.export.export_tflite(
        model, "rte_generate.tflite", mode="baked", prompts="rte.safetensors",
        graph="generate", batch_size=1, encoder_sequence_length=64,
        max_decode_length=8,
    )
    # The same graph with int8 weights, for CPU serving.
    keras_prompt.export.export_tflite(
        model, "rte_generate_int8.tflite", mode="baked",
        prompts="rte.safetensors", graph="generate", batch_size=1,
        encoder_sequence_length=64, max_decode_length=8, quantize="int8",
    )
    ```
    """
    check_graph_argument(graph)
    check_quantize_argument(quantize)
    causal = metadata_lib.is_causal(model)
    check_family_arguments(
        causal,
        {"sequence_length": sequence_length, "max_new_tokens": max_new_tokens},
        {
            "encoder_sequence_length": encoder_sequence_length,
            "decoder_sequence_length": decoder_sequence_length,
        },
    )
    preprocessor = getattr(model, "preprocessor", None)
    if causal:
        if sequence_length is None:
            sequence_length = getattr(preprocessor, "sequence_length", None)
        if sequence_length is None:
            raise ValueError(
                "TFLite graphs have fixed shapes: pass `sequence_length`, or "
                "attach a preprocessor that defines it."
            )
        if int(sequence_length) < 1:
            raise ValueError(
                f"`sequence_length` must be >= 1; got {sequence_length}."
            )
    else:
        if encoder_sequence_length is None:
            encoder_sequence_length = getattr(
                preprocessor, "encoder_sequence_length", None
            )
        if decoder_sequence_length is None:
            decoder_sequence_length = getattr(
                preprocessor, "decoder_sequence_length", None
            )
        if encoder_sequence_length is None or (
            graph == "forward" and decoder_sequence_length is None
        ):
            raise ValueError(
                "TFLite graphs have fixed shapes: pass "
                "`encoder_sequence_length` (and `decoder_sequence_length` "
                "for graph='forward'), or attach a preprocessor that "
                "defines them."
            )
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    resolved = ExportPrompts.from_model(model, mode, prompts)
    core = resolved.build_module(model)
    length, lengths = generation_lengths(
        core,
        graph,
        max_decode_length,
        max_new_tokens,
        sequence_length=sequence_length,
    )
    if causal:
        lengths["sequence_length"] = int(sequence_length)
        # Fixed shapes: the whole input always fits.
        lengths.pop("max_token_columns", None)
    else:
        lengths["encoder_sequence_length"] = int(encoder_sequence_length)
        lengths["decoder_sequence_length"] = (
            int(decoder_sequence_length) if graph == "forward" else None
        )
    specs = io_specs(
        core,
        graph,
        batch_size=int(batch_size),
        encoder_length=None if causal else int(encoder_sequence_length),
        decoder_length=int(decoder_sequence_length or 0) or None,
        sequence_length=int(sequence_length) if causal else None,
    )
    function = graph_function(core, graph, length, specs)
    expected_outputs = sorted(output_names(graph, causal))
    try:
        concrete = function.get_concrete_function()
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [concrete], core
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize:
            # Without a representative dataset: dynamic-range quantization.
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        content = converter.convert()
    except Exception as error:
        raise ExportError(
            f"TFLite conversion of the {graph} graph failed (builtin ops "
            f"only): {error}"
        ) from error
    try:
        interpreter = load_interpreter(model_content=content)
        runner = interpreter.get_signature_runner()
        inputs = sorted(runner.get_input_details())
        outputs = sorted(runner.get_output_details())
        if (
            inputs != sorted(spec.name for spec in specs)
            or outputs != expected_outputs
        ):
            raise ExportError(
                f"The TFLite model has inputs {inputs} and outputs {outputs}; "
                f"expected {sorted(spec.name for spec in specs)} and "
                f"{expected_outputs}."
            )
        runner(**smoke_feed(specs))
    except ExportError:
        raise
    except Exception as error:
        raise ExportError(
            f"The converted TFLite {graph} graph does not run: {error}"
        ) from error
    description = metadata_lib.export_metadata(
        model,
        resolved,
        "tflite",
        graph=graph,
        batch_size=int(batch_size),
        inputs=[spec.name for spec in specs],
        outputs=output_names(graph, causal),
        quantization=quantize,
        **lengths,
    )
    description["invalid_inputs_flags"] = describe_flags()
    tokenizer = metadata_lib.tokenizer_of(model)
    # T5's SentencePiece models (a decoder-only model's tokenizer is the
    # model's own KerasHub one).
    if tokenizer is not None and not causal:
        # For `export/litert_client.py`: text in and out without keras-prompt.
        description["sentencepiece_model"] = base64.b64encode(
            tokenizer.proto
        ).decode("ascii")
        description["detokenizer_model"] = base64.b64encode(
            model.detokenizer.detokenizer_proto
        ).decode("ascii")
    path = os.path.abspath(os.fspath(path))
    with atomic_file(path + METADATA_SUFFIX) as temp_path:
        with open(temp_path, "w") as file:
            file.write(metadata_lib.dumps(description))
    with atomic_file(path) as temp_path:
        with open(temp_path, "wb") as file:
            file.write(content)
    logger.info(
        "Exported %s-mode %sTFLite %s graph (%d bytes) to %s.",
        mode,
        "int8 " if quantize else "",
        graph,
        len(content),
        path,
    )
    return path
