"""The `keras-prompt` command line (see `keras_prompt.cli.main`)."""

from keras_prompt.cli.main import build_parser
from keras_prompt.cli.main import main
from keras_prompt.cli.main import register_subcommand
from keras_prompt.cli.main import unregister_subcommand

__all__ = ["build_parser", "main", "register_subcommand", "unregister_subcommand"]
