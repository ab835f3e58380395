"""The end of every runner: its reply, with what it imported, written as
JSON next to the request's output path (where `run_runner` reads it)."""

import json
import sys


def write_reply(request, reply):
    """Adds `imported_keras_prompt` / `imported_keras_hub` to `reply` and
    writes it to `request["output"] + ".json"`."""
    reply["imported_keras_prompt"] = "keras_prompt" in sys.modules
    reply["imported_keras_hub"] = "keras_hub" in sys.modules
    with open(request["output"] + ".json", "w") as file:
        json.dump(reply, file)
