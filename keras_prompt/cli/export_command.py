"""`keras-prompt export`: SavedModel / ONNX / TFLite from prompt files.

Examples:
    # TF Serving, one model serving three tasks in mixed batches
    keras-prompt export --backbone t5_small_multi \
        --prompt rte=runs/rte --prompt sst2=runs/sst2 --prompt boolq=runs/boolq \
        --format savedmodel --output serving --model-name t5_prompts

    # ONNX forward + generate graphs with one prompt baked in
    keras-prompt export --backbone t5_small_multi --prompt runs/rte \
        --format onnx --output onnx/

    # TFLite, fixed shapes, runtime prompt input
    keras-prompt export --backbone t5_small_multi --mode runtime \
        --prompt-length 20 --format tflite --batch-size 1 \
        --encoder-sequence-length 128 --output tflite/

    # ONNX with int8 weight matmuls for CPU serving (opt-in, approximate)
    keras-prompt export --backbone t5_small_multi --prompt runs/rte \
        --format onnx --quantize int8 --output onnx_int8/
"""

import logging
import os

from keras_prompt.cli.arguments import positive_int

logger = logging.getLogger(__name__)

FORMATS = ("savedmodel", "onnx", "tflite")
QUANTIZATIONS = ("none", "int8")
MODES = ("baked", "runtime", "bank")
HELP = "export a SavedModel (TF Serving), ONNX or TFLite model"
DESCRIPTION = (
    "Export the frozen backbone with prompts baked in, as a runtime input, "
    "or as a bank of tasks chosen per example. Prompt files are checked "
    "against the backbone first. SavedModels are written in the TF Serving "
    "layout OUTPUT/MODEL_NAME/VERSION with the signatures serving_default "
    "(text -> text), generate_ids and logits."
)


def parse_prompt_argument(text):
    """`[NAME=]FILE` -> `(name or None, path)`; a directory means
    `DIR/prompt.safetensors` (a training output directory)."""
    from keras_prompt.prompts.prompt_file import prompt_file_path

    name, path = None, text
    if "=" in text and not os.path.exists(text):
        name, path = text.split("=", 1)
        if not name:
            raise ValueError(f"--prompt {text!r}: empty task name before '='.")
    path = prompt_file_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--prompt {text!r}: no prompt file at '{path}'."
        )
    return name, path


def _task_name(name, path, metadata):
    if name:
        return name
    if metadata.get("task"):
        return str(metadata["task"])
    stem = os.path.basename(path)
    if stem == "prompt.safetensors":
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    return stem.split(".")[0]


def trained_sequence_lengths(metadatas):
    """The encoder and decoder lengths to export prompts with by default.

    Prompt files record the lengths they were trained with
    (`encoder_sequence_length`, `decoder_sequence_length`). A bank takes
    the longest of each, so that no task's inputs are cut shorter than in
    its training. A length is `None` (the preprocessor's applies) when some
    file does not record it: files written by keras-prompt 0.1.0 export
    with the preprocessor's lengths, as they always did.

    Args:
        metadatas: the prompt files' metadata dicts (`read_prompt_file`).

    Returns:
        A dict with keys `encoder_sequence_length` and
        `decoder_sequence_length`, each an integer or `None`.
    """
    lengths = {}
    for key in ("encoder_sequence_length", "decoder_sequence_length"):
        values = [metadata.get(key) for metadata in metadatas]
        known = bool(values) and all(value is not None for value in values)
        lengths[key] = max(int(value) for value in values) if known else None
    return lengths


def trained_causal_format(metadatas):
    """What decoder-only prompt files record of their training format: the
    longest `max_input_length`, the longest target length
    (`sequence_length - max_input_length`) and the one `separator`, each
    `None` when some file does not record it.

    Raises:
        ValueError: the files record different separators (their tasks
            format text differently and cannot share one text signature).
    """
    def recorded(key):
        values = [metadata.get(key) for metadata in metadatas]
        known = bool(values) and all(value is not None for value in values)
        return values if known else None

    inputs, totals = recorded("max_input_length"), recorded("sequence_length")
    separators = recorded("separator")
    if separators is not None and len(set(separators)) > 1:
        raise ValueError(
            "The prompt files were trained with different separators "
            f"({sorted(set(map(repr, separators)))}); one export formats "
            "every task's text with one. Export them separately."
        )
    return {
        "max_input_length": max(inputs) if inputs else None,
        "max_new_tokens": max(t - i for t, i in zip(totals, inputs))
        if inputs and totals else None,
        "separator": separators[0] if separators else None,
    }


def add_arguments(parser):
    parser.add_argument(
        "--backbone",
        required=True,
        help="KerasHub preset name, preset directory or Hugging Face "
        "checkpoint directory (T5 or a decoder-only family: the backbone the "
        "prompts were trained on)",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="prompt file or training output directory; repeat for a bank "
        "(NAME defaults to the file's task metadata, then the file name); a "
        "NAME given several times holds all its prompts (an ensemble: "
        "SavedModel signatures ensemble_text/ensemble_ids)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="baked (one prompt frozen in), runtime (prompt is an input), "
        "bank (several tasks, chosen per example). Default: runtime without "
        "--prompt, baked with one, bank with several",
    )
    parser.add_argument("--format", choices=FORMATS, default="savedmodel")
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="savedmodel: TF Serving base dir (writes DIR/MODEL_NAME/VERSION); "
        "onnx/tflite: writes DIR/MODEL_NAME_{forward,generate}.{onnx,tflite}",
    )
    parser.add_argument("--model-name", default="keras_prompt")
    parser.add_argument(
        "--version", type=int, default=1, help="SavedModel version (default 1)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing version"
    )
    parser.add_argument(
        "--no-text-signature",
        action="store_true",
        help="savedmodel: omit serving_default (text -> text) and its "
        "tensorflow-text ops; keep generate_ids and logits",
    )
    parser.add_argument(
        "--max-decode-length",
        type=positive_int,
        default=32,
        help="decoder length of generated sequences, start token included "
        "(default 32)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help="decoder-only backbones: tokens generated per example (default: "
        "the target length the prompts were trained with, recorded in their "
        "files, else --max-decode-length - 1)",
    )
    parser.add_argument(
        "--max-input-length",
        type=positive_int,
        help="decoder-only backbones: tokens of start token + input + "
        "separator that serving_default formats text to (default: the "
        "prompts' training length)",
    )
    parser.add_argument(
        "--graph",
        choices=("forward", "generate", "both"),
        default="both",
        help="onnx/tflite: which graphs to write (default both)",
    )
    parser.add_argument(
        "--prompt-length",
        type=positive_int,
        help="runtime mode without --prompt: the prompt length P",
    )
    parser.add_argument(
        "--encoder-sequence-length",
        type=positive_int,
        help="serving_default packing length; fixed TFLite encoder length "
        "(default: the length the prompts were trained with, recorded in "
        "their files; for files without it and in runtime mode, the preset's "
        "preprocessor)",
    )
    parser.add_argument(
        "--decoder-sequence-length",
        type=positive_int,
        help="fixed TFLite forward-graph decoder length (default: the prompts' "
        "training length, else the preset's)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="TFLite fixed batch size",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="none",
        help="onnx/tflite, opt-in: int8 for CPU serving (dynamic "
        "quantization: int8 weight matmuls, activations quantized at run "
        "time; smaller files, outputs approximate: check your task's "
        "accuracy). Default none (float32); SavedModels stay float32",
    )


def run(args):
    from keras_prompt.export import ExportError

    try:
        return _run(args)
    except (ExportError, FileExistsError) as error:
        # `keras_prompt.cli.main` reports ValueErrors as clean CLI errors.
        raise ValueError(str(error)) from error


def _run(args):
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model
    from keras_prompt.export import export_tflite
    from keras_prompt.prompts.prompt_file import read_prompt_file
    from keras_prompt.training.model_builder import is_causal_preset

    if args.quantize != "none" and args.format == "savedmodel":
        raise ValueError(
            f"--quantize {args.quantize} applies to --format onnx and tflite; "
            "SavedModels (TF Serving) stay float32. Drop --quantize, or export "
            "--format onnx or tflite."
        )
    entries = []
    metadatas = []
    for text in args.prompt:
        name, path = parse_prompt_argument(text)
        values, metadata = read_prompt_file(path)
        entries.append(
            (_task_name(name, path, metadata), path, values.shape[0])
        )
        metadatas.append(metadata)
    mode = args.mode or (
        "runtime" if not entries else "baked" if len(entries) == 1 else "bank"
    )
    if mode == "baked" and len(entries) != 1:
        raise ValueError(
            f"--mode baked takes exactly one --prompt; got {len(entries)}. Use "
            "--mode bank for several tasks."
        )
    if mode == "bank" and not entries:
        raise ValueError("--mode bank needs at least one --prompt NAME=FILE.")
    if mode == "runtime" and entries:
        raise ValueError(
            "--mode runtime takes the prompt at serving time; drop --prompt "
            "and give --prompt-length."
        )
    if mode == "runtime" and not args.prompt_length:
        raise ValueError("--mode runtime needs --prompt-length.")
    lengths = {entry[2] for entry in entries}
    if len(lengths) > 1:
        raise ValueError(
            "All prompts of a bank must have the same length; got "
            + ", ".join(f"{name}: {length}" for name, _, length in entries)
            + "."
        )
    # A task named by several --prompt holds all of them: an ensemble.
    task_files = {}
    for name, path, _ in entries:
        task_files.setdefault(name, []).append(path)
    names = list(task_files)
    prompt_length = lengths.pop() if lengths else args.prompt_length
    if args.format == "savedmodel" and not args.overwrite:
        version_dir = os.path.join(
            args.output, args.model_name, str(args.version)
        )
        if os.path.exists(version_dir):
            raise FileExistsError(
                f"'{version_dir}' already exists. Export to a new --version "
                "(TF Serving serves the highest), or pass --overwrite."
            )

    if is_causal_preset(args.backbone):
        model, options = _causal_model(args, metadatas, prompt_length)
    else:
        model, options = _t5_model(args, metadatas, prompt_length)
    prompts = None
    if mode == "baked":
        prompts = entries[0][1]
    elif mode == "bank":
        prompts = {
            name: paths[0] if len(paths) == 1 else paths
            for name, paths in task_files.items()
        }


    written = []
    if args.format == "savedmodel":
        written.append(
            export_saved_model(
                model,
                args.output,
                mode=mode,
                prompts=prompts,
                model_name=args.model_name,
                version=args.version,
                max_decode_length=args.max_decode_length,
                overwrite=args.overwrite,
                text_signature=not args.no_text_signature,
                **options["savedmodel"],
            )
        )
    else:
        graphs = (
            ("forward", "generate") if args.graph == "both" else (args.graph,)
        )
        exporter = export_onnx if args.format == "onnx" else export_tflite
        for graph in graphs:
            path = os.path.join(
                args.output, f"{args.model_name}_{graph}.{args.format}"
            )
            written.append(
                exporter(
                    model,
                    path,
                    mode=mode,
                    prompts=prompts,
                    graph=graph,
                    max_decode_length=args.max_decode_length,
                    quantize=None if args.quantize == "none" else args.quantize,
                    **options[args.format],
                )
            )
    if mode == "bank":
        print(
            "tasks: "
            + ", ".join(
                f"{i}={name}"
                + (f" ({len(task_files[name])} prompts: an ensemble)"
                   if len(task_files[name]) > 1 else "")
                for i, name in enumerate(names)
            )
        )
    for path in written:
        print(path)
    return 0


def _refuse(args, names, fix):
    given = [
        "--" + name.replace("_", "-") for name in names
        if getattr(args, name) is not None
    ]
    if given:
        raise ValueError(f"{', '.join(given)}: {fix}")


def _t5_model(args, metadatas, prompt_length):
    """The T5 model to export and each format's length arguments."""
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM

    _refuse(
        args,
        ("max_new_tokens", "max_input_length"),
        "decoder-only backbones only; a T5 export takes "
        "--max-decode-length and --encoder-sequence-length.",
    )
    # Serving at the training length rather than the preprocessor's
    # (KerasHub's default is 1024) keeps requests as fast as in training.
    trained = trained_sequence_lengths(metadatas)
    encoder_length = (
        args.encoder_sequence_length or trained["encoder_sequence_length"]
    )
    decoder_length = (
        args.decoder_sequence_length or trained["decoder_sequence_length"]
    )
    if encoder_length != args.encoder_sequence_length:
        logger.info(
            "Encoder length %d, as the prompts were trained "
            "(--encoder-sequence-length overrides it).",
            encoder_length,
        )
    model = PromptedT5Seq2SeqLM.from_preset(
        args.backbone,
        encoder_sequence_length=encoder_length,
        decoder_sequence_length=decoder_length,
        prompt_length=prompt_length,
    )
    tflite = {
        "batch_size": args.batch_size,
        "encoder_sequence_length": encoder_length,
        "decoder_sequence_length": decoder_length,
    }
    return model, {"savedmodel": {}, "onnx": {}, "tflite": tflite}


def _causal_model(args, metadatas, prompt_length):
    """The decoder-only model to export and each format's length
    arguments: the prompts' recorded input length, target length and
    separator unless the flags override them."""
    from keras_prompt.models.prompted_causal_lm import PromptedCausalLM

    _refuse(
        args,
        ("encoder_sequence_length", "decoder_sequence_length"),
        "T5 only; a decoder-only export takes --max-input-length and "
        "--max-new-tokens.",
    )
    trained = trained_causal_format(metadatas)
    input_length = args.max_input_length or trained["max_input_length"]
    new_tokens = args.max_new_tokens or trained["max_new_tokens"]
    if new_tokens != args.max_new_tokens and new_tokens:
        logger.info(
            "Input length %s and %d new tokens, as the prompts were trained "
            "(--max-input-length / --max-new-tokens override them).",
            input_length,
            new_tokens,
        )
    model = PromptedCausalLM.from_preset(
        args.backbone, sequence_length=input_length, prompt_length=prompt_length
    )
    graphs = {"max_new_tokens": new_tokens}
    savedmodel = dict(
        graphs, max_input_length=input_length, separator=trained["separator"]
    )
    tflite = dict(
        graphs, batch_size=args.batch_size, sequence_length=input_length
    )
    return model, {"savedmodel": savedmodel, "onnx": graphs, "tflite": tflite}
