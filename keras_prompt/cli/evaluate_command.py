"""`keras-prompt evaluate`: a prompt's task metrics."""

import json

from keras_prompt.cli.arguments import add_length_arguments
from keras_prompt.cli.arguments import add_task_arguments
from keras_prompt.cli.arguments import add_xla_arguments
from keras_prompt.cli.arguments import positive_int
from keras_prompt.cli.arguments import task_from_arguments

HELP = "compute a prompt's (or a prompt ensemble's) task metrics"
DESCRIPTION = (
    "Greedy decoding + exact match against the label words (or "
    "--rank-classification); prints the metrics as JSON. With several "
    "--prompt files of one task and --ensemble, evaluates them as an "
    "ensemble (all prompts in one batch, then a majority vote or the mean "
    "label log-likelihood), with each prompt's own metrics."
)
ENSEMBLE_METHODS = ("vote", "mean-logprob")


def add_arguments(parser):
    parser.add_argument(
        "--backbone",
        required=True,
        help="the backbone the prompt was trained on",
    )
    parser.add_argument(
        "--prompt",
        required=True,
        action="append",
        help="prompt file, or a training output directory; repeat it with "
        "--ensemble for a prompt ensemble",
    )
    parser.add_argument(
        "--ensemble",
        choices=ENSEMBLE_METHODS,
        help="evaluate the --prompt files as an ensemble: vote (majority "
        "vote of their labels, ties to the higher mean log-likelihood) or "
        "mean-logprob (the label with the highest mean log-likelihood)",
    )
    add_task_arguments(parser, split_files=("validation", "test"))
    parser.add_argument(
        "--split",
        default="validation",
        help="validation (default), test, or a TFDS split",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32)
    add_length_arguments(parser)
    parser.add_argument("--max-examples", type=positive_int)
    parser.add_argument(
        "--rank-classification",
        action="store_true",
        help="pick the label word with the highest log-likelihood instead "
        "of greedy decoding",
    )
    add_xla_arguments(parser)
    parser.add_argument(
        "--output",
        metavar="JSON",
        help="also write the metrics to this JSON file",
    )


def prompt_labels(prompt):
    """The label words a prompt file records (for file tasks without
    `--labels`)."""
    from keras_prompt.prompts.prompt_file import prompt_file_path
    from keras_prompt.prompts.prompt_file import read_prompt_file

    _, metadata = read_prompt_file(prompt_file_path(prompt))
    labels = metadata.get("labels")
    return ",".join(labels) if labels else None


def run(args):
    if len(args.prompt) > 1 and not args.ensemble:
        raise ValueError(
            f"Got {len(args.prompt)} --prompt files: evaluate them together "
            "with --ensemble vote (or --ensemble mean-logprob), or one at a "
            "time with a single --prompt."
        )
    split = args.split
    if split == "validation" and args.test_file and not args.validation_file:
        split = "test"
    task = task_from_arguments(
        args, labels=None if args.task else prompt_labels(args.prompt[0])
    )
    options = dict(
        split=split,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        max_input_length=args.max_input_length,
        max_target_length=args.max_target_length,
        length_buckets=args.length_buckets,
        max_examples=args.max_examples,
        jit_compile=args.jit_compile,
        output=args.output,
    )
    if args.ensemble:
        from keras_prompt.training.ensemble import ensemble

        metrics = ensemble(
            args.backbone,
            args.prompt,
            task,
            method=args.ensemble,
            rank_classification=args.rank_classification or None,
            **options,
        )
    else:
        from keras_prompt.training.evaluate import evaluate

        metrics = evaluate(
            args.backbone,
            args.prompt[0],
            task,
            rank_classification=args.rank_classification,
            **options,
        )
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
