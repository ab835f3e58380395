"""argparse types and the argument groups several subcommands share."""

import argparse


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer (>= 1), got {value}"
        )
    return value


def positive_float(text):
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_task_arguments(parser, split_files=("train", "validation")):
    """`--task` or a file task (`--train-file`, `--template`, ...)."""
    group = parser.add_argument_group(
        "task", "a built-in task (--task) or your own files"
    )
    group.add_argument(
        "--task",
        help="built-in task: boolq, cb, copa, rte, wic, sst2, mrpc, qqp, "
        "mnli, qnli, glue_rte, demo_animal, demo_mood (or one registered by "
        "a plugin); GLUE/SuperGLUE tasks are read from TFDS, see --data-dir",
    )
    group.add_argument(
        "--data-dir",
        help="TFDS data directory holding the prepared dataset (default: "
        "$TFDS_DATA_DIR or ~/tensorflow_datasets); nothing is downloaded",
    )
    for split in split_files:
        group.add_argument(
            f"--{split}-file", help=f"{split} data: .csv, .tsv or .jsonl"
        )
    group.add_argument(
        "--template",
        help="input text template over the file's columns, e.g. "
        "'premise: {premise} hypothesis: {hypothesis}'",
    )
    group.add_argument(
        "--label-column",
        default="label",
        help="column with the label (default: label)",
    )
    group.add_argument(
        "--labels",
        help="comma-separated label words, e.g. yes,no; the label column "
        "holds these words or their 0-based index",
    )
    group.add_argument(
        "--metric",
        default="accuracy",
        help="accuracy, f1 or macro_f1 (comma-separated; the first is used "
        "for early stopping); files only",
    )
    group.add_argument(
        "--file-format",
        choices=["csv", "tsv", "jsonl"],
        help="override the format inferred from the extension",
    )


def task_from_arguments(args, labels=None):
    """The `Task` of `--task` or of the file arguments."""
    from keras_prompt.data import resolve_task

    return resolve_task(
        args.task,
        train_file=getattr(args, "train_file", None),
        validation_file=getattr(args, "validation_file", None),
        test_file=getattr(args, "test_file", None),
        template=args.template,
        label_column=args.label_column,
        labels=args.labels or labels,
        metric=args.metric,
        file_format=args.file_format,
    )


def length_buckets(text):
    """argparse type of `--length-buckets`: `auto`, `none`, or
    comma-separated lengths."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto, none or comma-separated lengths such as "
            f"64,128,256, got {text!r}"
        )


def add_length_arguments(parser):
    parser.add_argument(
        "--max-input-length",
        type=positive_int,
        default=256,
        help="encoder tokens; longer inputs are truncated and counted "
        "(default: 256)",
    )
    parser.add_argument(
        "--max-target-length",
        type=positive_int,
        help="decoder tokens (default: longest label word + 1)",
    )
    parser.add_argument(
        "--length-buckets",
        type=length_buckets,
        default="auto",
        metavar="auto|none|N,N,...",
        help="pad each batch to the smallest of these input lengths that "
        "holds its examples (one compiled step per length): auto (default: "
        "at most 4, chosen from the data), none (always --max-input-length), "
        "or lengths such as 64,128,256 (--max-input-length is added last)",
    )


def add_xla_arguments(parser):
    """`--xla` / `--no-xla` into `args.jit_compile` (default `"auto"`: XLA
    on GPUs and TPUs; on CPUs only the decoding loop)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--xla", dest="jit_compile", action="store_const", const=True,
        help="compile steps with XLA (default: on GPUs and TPUs; on CPUs only "
        "generation's decoding loop)",
    )
    group.add_argument(
        "--no-xla", dest="jit_compile", action="store_const", const=False,
        help="do not compile steps with XLA",
    )
    parser.set_defaults(jit_compile="auto")
