"""The `keras-prompt` command: every subcommand, in one place.

Subcommand modules define `HELP`, `DESCRIPTION`, `add_arguments(parser)` and
`run(args) -> int` (and `uses_tensorflow(args)` when they can do without
it); they import TensorFlow only inside `run`, so `--help` is instant.
Installed packages can add subcommands through the `keras_prompt.cli`
entry-point group, or in-process with `register_subcommand`:

```python
from keras_prompt.cli import register_subcommand

register_subcommand("hello", help="say hello",
                    add_arguments=lambda p: p.add_argument("--name"),
                    run=lambda args: print("hello", args.name) or 0)
```
"""

import argparse
import importlib
import logging
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The built-in subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES = {
    "quickstart": "keras_prompt.cli.quickstart_command",
    "train": "keras_prompt.cli.train_command",
    "evaluate": "keras_prompt.cli.evaluate_command",
    "predict": "keras_prompt.cli.predict_command",
    "inspect": "keras_prompt.cli.inspect_command",
    "export": "keras_prompt.cli.export_command",
}
ENTRY_POINT_GROUP = "keras_prompt.cli"
LOG_LEVELS = ("debug", "info", "warning", "error")

_PLUGINS = {}

EPILOG = """\
examples:
  # The whole job on the built-in demo backbone, offline
  keras-prompt quickstart --output runs/quickstart

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
  keras-prompt export --backbone t5_small_multi --prompt rte=runs/rte \\
      --prompt sst2=runs/sst2 --format savedmodel --output serving
"""


def register_subcommand(name, *, help, add_arguments, run, description=None):
    """Adds a `keras-prompt NAME` subcommand (for plugins).

    Args:
        name: the subcommand name.
        help: one-line help shown in `keras-prompt --help`.
        add_arguments: `fn(parser)` adding the subcommand's arguments.
        run: `fn(args) -> int` exit status.
        description: longer text for `keras-prompt NAME --help`.
    """
    _PLUGINS[name] = {
        "help": help,
        "add_arguments": add_arguments,
        "run": run,
        "description": description or help,
    }


def unregister_subcommand(name):
    """Removes a subcommand added with `register_subcommand`."""
    _PLUGINS.pop(name, None)


def _subcommands():
    commands = {}
    for name, module_name in SUBCOMMAND_MODULES.items():
        module = importlib.import_module(module_name)
        commands[name] = {
            "help": module.HELP,
            "description": module.DESCRIPTION,
            "add_arguments": module.add_arguments,
            "run": module.run,
            "uses_tensorflow": getattr(module, "uses_tensorflow", None),
        }
    try:
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINT_GROUP):
            entry.load()
    except Exception as error:  # A broken plugin must not break the CLI.
        logging.getLogger(__name__).warning(
            "A keras-prompt CLI plugin failed to load: %s", error
        )
    commands.update(_PLUGINS)
    return commands


def build_parser():
    """The `argparse` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="keras-prompt",
        description="Prompt tuning (Lester et al., 2021) for KerasHub T5: "
        "train a small soft prompt on a frozen model, evaluate it, serve it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        help="info (default): keras-prompt's progress and results only; "
        "debug: also TensorFlow's, absl's, tf2onnx's and Keras's messages",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, spec in _subcommands().items():
        sub = subparsers.add_parser(
            name, help=spec["help"], description=spec["description"]
        )
        spec["add_arguments"](sub)
        sub.set_defaults(_spec=spec)
    return parser


def main(argv=None):
    """Entry point of the `keras-prompt` console script."""
    from keras_prompt.cli import log_setup

    parser = build_parser()
    args = parser.parse_args(argv)
    spec = args._spec
    with log_setup.configured(args.log_level):
        uses_tensorflow = spec.get("uses_tensorflow")
        if args.log_level != "debug" and (
            uses_tensorflow is None or uses_tensorflow(args)
        ):
            log_setup.import_tensorflow_quietly()
        try:
            return spec["run"](args)
        except (ValueError, FileNotFoundError, FileExistsError) as error:
            # DataError, TrainingError, PromptFileError and ExportError are
            # ValueErrors whose messages name the problem and the fix.
            if args.log_level == "debug":
                raise
            print(
                f"keras-prompt {args.command}: error: {error}", file=sys.stderr
            )
            return 2
