"""`keras-prompt train`: prompt-tune a frozen T5 or decoder-only LM on a
task or your files."""

import argparse
import os
import sys

from keras_prompt.cli.arguments import add_length_arguments
from keras_prompt.cli.arguments import add_task_arguments
from keras_prompt.cli.arguments import add_xla_arguments
from keras_prompt.cli.arguments import positive_float
from keras_prompt.cli.arguments import positive_int
from keras_prompt.cli.arguments import task_from_arguments

HELP = "train a soft prompt on a task or your files"
DESCRIPTION = (
    "Prompt-tune a frozen T5 or decoder-only LM: writes "
    "OUTPUT/prompt.safetensors (best by the validation metric), "
    "OUTPUT/metrics.json, prompt checkpoints, a "
    "preemption backup (rerun the same command to resume) and TensorBoard "
    "logs. OUTPUT belongs to one run: a finished run there, or one with other "
    "settings, is refused unless --overwrite is given. --prompt-init FILE "
    "starts this task's prompt from a prompt trained on another task "
    "(transfer); --resume-from FILE continues a prompt on its own task in a "
    "new run (its length, the same label words, a fresh optimizer)."
)
# The initializers --prompt-init takes by name; anything else is a file.
INITIALIZER_NAMES = ("class_labels", "sampled_vocab", "random_uniform", "text")


def initializer_or_file(text):
    """argparse type: an initializer name, or an existing prompt file or
    training output directory."""
    if text in INITIALIZER_NAMES or os.path.exists(text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither an initializer ({', '.join(INITIALIZER_NAMES)})"
        " nor an existing prompt file or training output directory"
    )


def existing_path(text):
    """argparse type: an existing prompt file or training output
    directory."""
    if os.path.exists(text):
        return text
    raise argparse.ArgumentTypeError(
        f"no prompt file or training output directory at {text!r}"
    )


def add_arguments(parser):
    parser.add_argument(
        "--backbone",
        required=True,
        help="KerasHub preset name (t5_small_multi, gpt2_base_en), preset "
        "directory, or Hugging Face checkpoint directory (T5, or a decoder-only "
        "GPT-2, Gemma, Llama, Mistral or Qwen)",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="writes DIR/prompt.safetensors (best by the validation metric) "
        "and DIR/metrics.json",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run, or a run with other settings, in DIR: "
        "its prompt, metrics, checkpoints, backup and logs are deleted "
        "first (an unfinished run of the same settings is always resumed)",
    )
    add_task_arguments(parser)
    hp = parser.add_argument_group("prompt tuning (paper defaults)")
    hp.add_argument(
        "--prompt-length",
        type=positive_int,
        help="prompt vectors (default: 100, or the length of the "
        "--prompt-init / --resume-from file)",
    )
    hp.add_argument(
        "--prompt-init",
        default="class_labels",
        type=initializer_or_file,
        metavar="{" + ",".join(INITIALIZER_NAMES) + "} or FILE",
        help="prompt initialization (default: class_labels), or a prompt "
        "file (or training output directory) trained on this backbone for "
        "another task, to start from its values (SPoT transfer)",
    )
    hp.add_argument("--init-text", help="text for --prompt-init text")
    hp.add_argument(
        "--resume-from",
        type=existing_path,
        metavar="PROMPT",
        help="start a new run from a saved prompt (file or training output "
        "directory) of this task and backbone: its values and length, a "
        "fresh optimizer, steps counted from 0 (a preempted run instead "
        "resumes by rerunning its own command)",
    )
    hp.add_argument(
        "--reparameterization",
        choices=["residual"],
        help="residual: Residual Prompt Tuning, the prompt goes through a "
        "shared residual MLP while training (saved and exported prompts are "
        "folded, plain prompts)",
    )
    hp.add_argument(
        "--bottleneck-size",
        type=positive_int,
        metavar="N",
        help="width of the residual MLP (default: 800, the official code's)",
    )
    hp.add_argument(
        "--learning-rate",
        type=positive_float,
        default=0.3,
        help="Adafactor learning rate (default: 0.3)",
    )
    hp.add_argument(
        "--steps",
        type=positive_int,
        default=30_000,
        help="training steps (default: 30000)",
    )
    hp.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="global batch size, split across replicas (default: 32)",
    )
    add_length_arguments(hp)
    hp.add_argument("--seed", type=int, default=0, help="random seed")
    ev = parser.add_argument_group("validation, checkpoints, early stopping")
    ev.add_argument(
        "--eval-every",
        type=positive_int,
        default=1000,
        help="steps between validations and backups (default: 1000)",
    )
    ev.add_argument("--eval-batch-size", type=positive_int)
    ev.add_argument(
        "--max-eval-examples",
        type=positive_int,
        help="validate on at most N examples",
    )
    ev.add_argument(
        "--rank-classification",
        action="store_true",
        help="validate by scoring label words instead of greedy decoding",
    )
    ev.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        help="steps between prompt checkpoints (default: 1000)",
    )
    ev.add_argument("--keep-checkpoints", type=positive_int, default=3)
    ev.add_argument(
        "--early-stopping-patience",
        type=positive_int,
        help="stop after N validations without improvement",
    )
    hw = parser.add_argument_group("hardware")
    hw.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "tpu", "multi_worker", "mirrored", "cpu"],
        help="distribution strategy (default: auto = TPU, then TF_CONFIG "
        "multi-worker, then GPUs, then one device)",
    )
    hw.add_argument(
        "--tpu",
        help="TPU name or grpc:// address ('local' on a TPU VM; default: "
        "$TPU_NAME)",
    )
    add_xla_arguments(hw)
    hw.add_argument("--steps-per-execution", type=positive_int, default=1)
    hw.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="bfloat16 = mixed precision, prompt kept float32",
    )
    hw.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="do not write TensorBoard logs to DIR/logs",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        help="Keras progress bar (default: bar on a terminal)",
    )


def config_from_arguments(args):
    """The `TrainConfig` the flags describe."""
    from keras_prompt.training.train_config import TrainConfig

    from_file = args.prompt_init not in INITIALIZER_NAMES
    return TrainConfig(
        prompt_length=args.prompt_length,
        prompt_initializer="from_file" if from_file else args.prompt_init,
        init_text=args.init_text,
        init_file=args.prompt_init if from_file else None,
        resume_from=args.resume_from,
        reparameterization=args.reparameterization,
        bottleneck_size=args.bottleneck_size,
        learning_rate=args.learning_rate,
        steps=args.steps,
        batch_size=args.batch_size,
        max_input_length=args.max_input_length,
        max_target_length=args.max_target_length,
        length_buckets=args.length_buckets,
        eval_every=args.eval_every,
        eval_batch_size=args.eval_batch_size,
        max_eval_examples=args.max_eval_examples,
        rank_classification=args.rank_classification,
        early_stopping_patience=args.early_stopping_patience,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        strategy=args.strategy,
        tpu=args.tpu,
        jit_compile=args.jit_compile,
        steps_per_execution=args.steps_per_execution,
        dtype=args.dtype,
        seed=args.seed,
        tensorboard=not args.no_tensorboard,
        verbose="auto" if args.verbose is None else args.verbose,
        overwrite=args.overwrite,
    )


def run(args):
    from keras_prompt.training.train import train

    config = config_from_arguments(args).validate()
    try:
        result = train(
            args.backbone,
            task_from_arguments(args),
            output_dir=args.output,
            config=config,
            data_dir=args.data_dir,
        )
    except OSError as error:
        # A write failed part way (disk full, permissions): the message names
        # the file and says how to resume; a traceback would add nothing.
        if args.log_level == "debug":
            raise
        print(f"keras-prompt train: error: {error}", file=sys.stderr)
        return 2
    metrics = result["metrics"]
    best = metrics.get("best")
    if best:
        print(
            f"best {metrics['metric']}: {best[metrics['metric']]:.2f} at step "
            f"{best['step']}"
        )
    print(f"prompt:  {result['prompt_path']}")
    print(f"metrics: {result['metrics_path']}")
    return 0
