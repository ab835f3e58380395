"""The `keras-prompt` command: train, evaluate, predict, inspect (and
subcommands registered by other modules, e.g. export).

Each subcommand is registered with `register_subcommand(name, help=...,
add_arguments=..., run=...)`. Modules listed in `SUBCOMMAND_MODULES` (when
importable) and entry points of group `keras_prompt.cli` are imported before
parsing so they can register theirs:

```python
# keras_prompt/export/cli.py
from keras_prompt.cli import register_subcommand

def _add_arguments(parser):
    parser.add_argument("--prompt", required=True)

def _run(args):
    ...
    return 0

register_subcommand("export", help="Export a SavedModel or ONNX model.",
                    add_arguments=_add_arguments, run=_run)
```

TensorFlow is imported only when a subcommand runs, so `--help` is fast.
"""

import argparse
import importlib
import json
import logging
import os
import sys

# Before anything imports TensorFlow (subcommand modules may).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Optional modules that register more subcommands when they exist.
SUBCOMMAND_MODULES = [
    "keras_prompt.export.cli",
    "keras_prompt.quickstart",
    "keras_prompt.quickstart.cli",
]
ENTRY_POINT_GROUP = "keras_prompt.cli"

_SUBCOMMANDS = {}

EPILOG = """\
examples:
  # Prompt-tune T5 on SuperGLUE RTE (TFDS data prepared in ~/tensorflow_datasets)
  keras-prompt train --backbone t5_small_multi --task rte --output runs/rte

  # Your own CSV/TSV/JSONL files
  keras-prompt train --backbone ./my_t5_preset --output runs/nli \\
      --train-file train.csv --validation-file dev.csv \\
      --template "premise: {premise} hypothesis: {hypothesis}" \\
      --label-column label --labels entailment,not_entailment \\
      --prompt-length 20 --steps 2000 --batch-size 16

  keras-prompt evaluate --backbone t5_small_multi --prompt runs/rte --task rte
  keras-prompt predict --backbone t5_small_multi --prompt runs/rte \\
      --text "rte hypothesis: It rains. premise: The streets are wet."
  keras-prompt inspect runs/rte/prompt.safetensors --backbone t5_small_multi
"""


def register_subcommand(name, *, help, add_arguments, run, description=None):
    """Register a `keras-prompt NAME` subcommand.

    Args:
        name: the subcommand name.
        help: one-line help shown in `keras-prompt --help`.
        add_arguments: `fn(parser)` adding the subcommand's arguments.
        run: `fn(args) -> int` exit status.
        description: longer text for `keras-prompt NAME --help`.
    """
    _SUBCOMMANDS[name] = {
        "help": help,
        "add_arguments": add_arguments,
        "run": run,
        "description": description or help,
    }


def _load_plugins():
    for module in SUBCOMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                continue
            raise
    try:
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINT_GROUP):
            entry.load()
    except Exception as e:  # A broken plugin must not break the CLI.
        logging.getLogger(__name__).warning("CLI plugin failed to load: %s", e)


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer (>= 1), got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


# === Shared argument groups ===


def _add_task_arguments(parser, split_files=("train", "validation")):
    group = parser.add_argument_group(
        "task", "a built-in task (--task) or your own files")
    group.add_argument(
        "--task", help="built-in task: boolq, cb, copa, rte, wic, sst2, "
        "mrpc, qqp, mnli, qnli, glue_rte (or one registered by a plugin); "
        "read from TFDS, see --data-dir")
    group.add_argument(
        "--data-dir", help="TFDS data directory holding the prepared dataset "
        "(default: $TFDS_DATA_DIR or ~/tensorflow_datasets); nothing is "
        "downloaded")
    for split in split_files:
        group.add_argument(f"--{split}-file",
                           help=f"{split} data: .csv, .tsv or .jsonl")
    group.add_argument(
        "--template", help="input text template over the file's columns, "
        "e.g. 'premise: {premise} hypothesis: {hypothesis}'")
    group.add_argument("--label-column", default="label",
                       help="column with the label (default: label)")
    group.add_argument(
        "--labels", help="comma-separated label words, e.g. yes,no; the label "
        "column holds these words or their 0-based index")
    group.add_argument("--metric", default="accuracy",
                       help="accuracy, f1 or macro_f1 (comma-separated; the "
                       "first is used for early stopping); files only")
    group.add_argument("--file-format", choices=["csv", "tsv", "jsonl"],
                       help="override the format inferred from the extension")


def _add_length_arguments(parser):
    parser.add_argument("--max-input-length", type=positive_int, default=256,
                        help="encoder tokens; longer inputs are truncated and "
                        "counted (default: 256)")
    parser.add_argument("--max-target-length", type=positive_int,
                        help="decoder tokens (default: longest label word + 1)")


# === train ===


def _add_train_arguments(parser):
    parser.add_argument("--backbone", required=True,
                        help="KerasHub preset name (t5_small_multi), preset "
                        "directory, or Hugging Face T5 checkpoint directory")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="writes DIR/prompt.safetensors (best by the "
                        "validation metric) and DIR/metrics.json")
    _add_task_arguments(parser)
    hp = parser.add_argument_group("prompt tuning (paper defaults)")
    hp.add_argument("--prompt-length", type=positive_int, default=100,
                    help="prompt vectors (default: 100)")
    hp.add_argument("--prompt-init", default="class_labels",
                    choices=["class_labels", "sampled_vocab", "random_uniform",
                             "text"],
                    help="prompt initialization (default: class_labels)")
    hp.add_argument("--init-text", help="text for --prompt-init text")
    hp.add_argument("--learning-rate", type=positive_float, default=0.3,
                    help="Adafactor learning rate (default: 0.3)")
    hp.add_argument("--steps", type=positive_int, default=30_000,
                    help="training steps (default: 30000)")
    hp.add_argument("--batch-size", type=positive_int, default=32,
                    help="global batch size, split across replicas "
                    "(default: 32)")
    _add_length_arguments(hp)
    hp.add_argument("--seed", type=int, default=0, help="random seed")
    ev = parser.add_argument_group("validation, checkpoints, early stopping")
    ev.add_argument("--eval-every", type=positive_int, default=1000,
                    help="steps between validations and backups "
                    "(default: 1000)")
    ev.add_argument("--eval-batch-size", type=positive_int)
    ev.add_argument("--max-eval-examples", type=positive_int,
                    help="validate on at most N examples")
    ev.add_argument("--rank-classification", action="store_true",
                    help="validate by scoring label words instead of greedy "
                    "decoding")
    ev.add_argument("--checkpoint-every", type=positive_int, default=1000,
                    help="steps between prompt checkpoints (default: 1000)")
    ev.add_argument("--keep-checkpoints", type=positive_int, default=3)
    ev.add_argument("--early-stopping-patience", type=positive_int,
                    help="stop after N validations without improvement")
    hw = parser.add_argument_group("hardware")
    hw.add_argument("--strategy", default="auto",
                    choices=["auto", "tpu", "multi_worker", "mirrored", "cpu"],
                    help="distribution strategy (default: auto = TPU, then "
                    "TF_CONFIG multi-worker, then GPUs, then one device)")
    hw.add_argument("--tpu", help="TPU name or grpc:// address ('local' on a "
                    "TPU VM; default: $TPU_NAME)")
    hw.add_argument("--no-xla", action="store_true",
                    help="do not compile steps with XLA")
    hw.add_argument("--steps-per-execution", type=positive_int, default=1)
    hw.add_argument("--dtype", default="float32",
                    choices=["float32", "bfloat16"],
                    help="bfloat16 = mixed precision, prompt kept float32")
    hw.add_argument("--no-tensorboard", action="store_true",
                    help="do not write TensorBoard logs to DIR/logs")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2],
                        help="Keras progress bar (default: bar on a terminal)")


def _run_train(args):
    from keras_prompt.training.train import train

    result = train(
        args.backbone, args.task, output_dir=args.output,
        train_file=args.train_file, validation_file=args.validation_file,
        template=args.template, label_column=args.label_column,
        labels=args.labels, metric=args.metric, file_format=args.file_format,
        data_dir=args.data_dir, prompt_length=args.prompt_length,
        prompt_initializer=args.prompt_init, init_text=args.init_text,
        learning_rate=args.learning_rate, steps=args.steps,
        batch_size=args.batch_size, max_input_length=args.max_input_length,
        max_target_length=args.max_target_length, eval_every=args.eval_every,
        eval_batch_size=args.eval_batch_size,
        max_eval_examples=args.max_eval_examples,
        rank_classification=args.rank_classification,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        early_stopping_patience=args.early_stopping_patience,
        strategy=args.strategy, tpu=args.tpu, jit_compile=not args.no_xla,
        steps_per_execution=args.steps_per_execution, dtype=args.dtype,
        seed=args.seed, tensorboard=not args.no_tensorboard,
        verbose="auto" if args.verbose is None else args.verbose)
    metrics = result["metrics"]
    best = metrics.get("best")
    if best:
        print(f"best {metrics['metric']}: {best[metrics['metric']]:.2f} at step "
              f"{best['step']}")
    print(f"prompt:  {result['prompt_path']}")
    print(f"metrics: {result['metrics_path']}")
    return 0


# === evaluate ===


def _add_evaluate_arguments(parser):
    parser.add_argument("--backbone", required=True,
                        help="the backbone the prompt was trained on")
    parser.add_argument("--prompt", required=True,
                        help="prompt file, or a training output directory")
    _add_task_arguments(parser, split_files=("validation", "test"))
    parser.add_argument("--split", default="validation",
                        help="validation (default), test, or a TFDS split")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    _add_length_arguments(parser)
    parser.add_argument("--max-examples", type=positive_int)
    parser.add_argument("--rank-classification", action="store_true",
                        help="pick the label word with the highest "
                        "log-likelihood instead of greedy decoding")
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--output", metavar="JSON",
                        help="also write the metrics to this JSON file")


def _run_evaluate(args):
    from keras_prompt.training.evaluate import evaluate

    split = args.split
    if split == "validation" and args.test_file and not args.validation_file:
        split = "test"
    metrics = evaluate(
        args.backbone, args.prompt, args.task, split=split,
        validation_file=args.validation_file, test_file=args.test_file,
        template=args.template, label_column=args.label_column,
        labels=args.labels, metric=args.metric, file_format=args.file_format,
        data_dir=args.data_dir, batch_size=args.batch_size,
        max_input_length=args.max_input_length,
        max_target_length=args.max_target_length,
        max_examples=args.max_examples,
        rank_classification=args.rank_classification,
        jit_compile=not args.no_xla, output=args.output)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


# === predict ===


def _add_predict_arguments(parser):
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--prompt", required=True,
                        help="prompt file, or a training output directory")
    parser.add_argument("--text", action="append", default=[],
                        help="an input text, already formatted (repeatable)")
    parser.add_argument("--input-file",
                        help="one input per line (.txt), or .csv/.tsv/.jsonl "
                        "rows formatted with --template")
    parser.add_argument("--template", help="template for --input-file rows")
    parser.add_argument("--labels", help="comma-separated label words; with "
                        "--rank-classification their scores are printed "
                        "(default: the prompt file's labels)")
    parser.add_argument("--rank-classification", action="store_true")
    parser.add_argument("--max-input-length", type=positive_int, default=256)
    parser.add_argument("--max-length", type=positive_int, default=16,
                        help="tokens to generate (default: 16)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per input")


def _read_predict_inputs(args):
    texts = list(args.text)
    if args.input_file:
        path = args.input_file
        ext = os.path.splitext(path)[1].lower()
        if ext in (".csv", ".tsv", ".jsonl", ".json"):
            from keras_prompt.data import TemplateFormatter
            from keras_prompt.data.file_source import _read_rows
            from keras_prompt.data.file_source import infer_file_format

            if not args.template:
                raise SystemExit(
                    f"error: --input-file {path} has columns; pass --template "
                    "to build the input text, e.g. --template "
                    "'premise: {premise} hypothesis: {hypothesis}'")
            formatter = TemplateFormatter(args.template)
            _, rows = _read_rows(path, infer_file_format(path))
            for line, row in rows:
                missing = [c for c in formatter.columns if c not in row]
                if missing:
                    from keras_prompt.data import DataError

                    raise DataError(f"Column '{missing[0]}' is missing from "
                                    f"line {line} of '{path}'.")
                texts.append(formatter.format_python(row))
        else:
            with open(path, encoding="utf-8") as f:
                texts.extend(line.rstrip("\n") for line in f if line.strip())
    if not texts:
        raise SystemExit("error: give inputs with --text or --input-file")
    return texts


def _run_predict(args):
    import types

    import numpy as np

    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.training.evaluate import load_model_with_prompt
    from keras_prompt.training.task_evaluator import TaskEvaluator

    texts = _read_predict_inputs(args)
    model, metadata = load_model_with_prompt(args.backbone, args.prompt)
    labels = ([w.strip() for w in args.labels.split(",") if w.strip()]
              if args.labels else list(metadata.get("labels") or []))
    if args.rank_classification and not labels:
        raise SystemExit("error: --rank-classification needs --labels (the "
                         "prompt file records none)")
    tokenizer = model.preprocessor.tokenizer
    pipeline = TextToTextPipeline(tokenizer, args.max_input_length,
                                  args.max_length)
    task = types.SimpleNamespace(label_words=labels, name="predict")
    evaluator = TaskEvaluator(model, task, pipeline)
    size = args.batch_size
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        padded = chunk + [""] * (size - len(chunk))  # static batch shape
        ids, mask = pipeline.encode_texts(padded)
        if args.rank_classification:
            scores = evaluator.score(ids, mask)[: len(chunk)]
            outputs = [labels[int(np.argmax(s))] for s in scores]
        else:
            outputs = pipeline.decode_generated(
                evaluator.generate_ids(ids, mask))[: len(chunk)]
            scores = None
        for i, (text, output) in enumerate(zip(chunk, outputs)):
            if args.json:
                record = {"input": text, "output": output}
                if scores is not None:
                    record["scores"] = dict(zip(labels, map(float, scores[i])))
                print(json.dumps(record))
            else:
                print(f"{output}\t{text}")
    return 0


# === inspect ===


def _add_inspect_arguments(parser):
    parser.add_argument("prompt", help="prompt file (or training output dir)")
    parser.add_argument("--backbone",
                        help="backbone to find the nearest vocabulary tokens "
                        "of each prompt vector (cosine similarity)")
    parser.add_argument("--top-k", type=positive_int, default=5,
                        help="nearest tokens per prompt vector (default: 5)")
    parser.add_argument("--rows", type=positive_int, default=20,
                        help="prompt vectors to show (default: 20)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text")


def _run_inspect(args):
    import numpy as np

    from keras_prompt.prompts.prompt_file import read_prompt_file

    path = args.prompt
    if os.path.isdir(path):
        path = os.path.join(path, "prompt.safetensors")
    prompt, metadata = read_prompt_file(path)
    norms = np.linalg.norm(prompt, axis=1)
    report = {
        "file": path,
        "metadata": metadata,
        "shape": list(prompt.shape),
        "norm": {"mean": float(norms.mean()), "min": float(norms.min()),
                 "max": float(norms.max())},
    }
    if args.backbone:
        from keras_prompt.nearest_tokens import nearest_tokens
        from keras_prompt.training.evaluate import load_model_with_prompt

        model, _ = load_model_with_prompt(args.backbone, path)
        neighbours = nearest_tokens(model, k=args.top_k)
        report["nearest_tokens"] = [
            [{"id": i, "token": t, "similarity": round(s, 4)}
             for i, t, s in row] for row in neighbours[: args.rows]]
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    print(f"prompt file: {path}")
    print(f"shape: {prompt.shape[0]} x {prompt.shape[1]}  (prompt_length x "
          "hidden_dim)")
    for key in sorted(metadata):
        print(f"  {key}: {metadata[key]}")
    n = report["norm"]
    print(f"vector norms: mean {n['mean']:.4f}, min {n['min']:.4f}, "
          f"max {n['max']:.4f}")
    if "nearest_tokens" in report:
        print(f"nearest tokens (cosine, top {args.top_k}):")
        for row, tokens in enumerate(report["nearest_tokens"]):
            shown = ", ".join(f"{t['token']!s} ({t['similarity']:.2f})"
                              for t in tokens)
            print(f"  {row:4d}: {shown}")
    else:
        print("(pass --backbone to list the nearest vocabulary tokens)")
    return 0


register_subcommand(
    "train", help="train a soft prompt on a task or your files",
    description="Prompt-tune a frozen T5: writes OUTPUT/prompt.safetensors "
    "(best by the validation metric), OUTPUT/metrics.json, prompt "
    "checkpoints, a preemption backup (rerun the same command to resume) and "
    "TensorBoard logs.",
    add_arguments=_add_train_arguments, run=_run_train)
register_subcommand(
    "evaluate", help="compute a prompt's task metrics",
    description="Greedy decoding + exact match against the label words (or "
    "--rank-classification); prints the metrics as JSON.",
    add_arguments=_add_evaluate_arguments, run=_run_evaluate)
register_subcommand(
    "predict", help="run a prompt on ad-hoc text",
    add_arguments=_add_predict_arguments, run=_run_predict)
register_subcommand(
    "inspect", help="show a prompt file's metadata and nearest tokens",
    add_arguments=_add_inspect_arguments, run=_run_inspect)


def build_parser():
    """The `argparse` parser with every registered subcommand."""
    _load_plugins()
    parser = argparse.ArgumentParser(
        prog="keras-prompt",
        description="Prompt tuning (Lester et al., 2021) for KerasHub T5: "
        "train a small soft prompt on a frozen model, evaluate it, use it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, spec in _SUBCOMMANDS.items():
        sub = subparsers.add_parser(
            name, help=spec["help"], description=spec["description"])
        spec["add_arguments"](sub)
        sub.set_defaults(_run=spec["run"])
    return parser


def main(argv=None):
    """Entry point of the `keras-prompt` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args._run(args)
    except (ValueError, FileNotFoundError) as e:
        # DataError, TrainingError and PromptFileError are ValueErrors whose
        # messages name the problem and the fix.
        if args.log_level == "DEBUG":
            raise
        print(f"keras-prompt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m keras_prompt.cli`: run the importable module's `main`, whose
    # registry the subcommand modules (`from keras_prompt.cli import
    # register_subcommand`) fill, not this `__main__` copy's.
    from keras_prompt.cli import main as _main

    sys.exit(_main())
