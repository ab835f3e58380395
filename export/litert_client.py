"""Text -> text with a keras-prompt LiteRT (TFLite) export.

Needs `ai-edge-litert` (or TensorFlow's `tf.lite` interpreter),
`sentencepiece` and `numpy`. Point it at a *generate* graph written by
`keras_prompt.export.export_tflite(..., graph="generate")` (or `keras-prompt
export --format tflite`); its JSON description `<model>.tflite.json` lies next
to it and carries the SentencePiece models, the fixed shapes, the task names
and the text rule (see `prompt_text.py`). LiteRT graphs have a fixed batch
size: inputs are run in batches of that size, the last one padded.

Usage:
    python litert_client.py bank_generate.tflite --task rte "rte sentence1: ..."

Example (Python):
    client = LiteRTPromptClient("bank_generate.tflite")
    client.generate(["rte sentence1: ...", "sst2 sentence: ..."],
                    tasks=["rte", "sst2"])
"""

import base64
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompt_client import PromptClient  # noqa: E402
from prompt_client import argument_parser  # noqa: E402
from prompt_client import print_generated  # noqa: E402

METADATA_SUFFIX = ".json"


def load_interpreter(path):
    """A LiteRT interpreter (`ai_edge_litert`, else `tf.lite`)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=path)


class LiteRTPromptClient(PromptClient):
    """Runs a keras-prompt LiteRT generate graph on strings.

    Args:
        path: the `.tflite` file of a `graph="generate"` export (its
            description `<path>.json` must lie next to it).
    """

    def __init__(self, path):
        description = path + METADATA_SUFFIX
        if not os.path.isfile(description):
            raise ValueError(
                f"No export description '{description}' next to '{path}': "
                "keep the .json file keras-prompt wrote with the model."
            )
        with open(description, encoding="utf-8") as file:
            metadata = json.load(file)
        if "sentencepiece_model" not in metadata:
            raise ValueError(
                f"'{description}' carries no SentencePiece model (the model "
                "was exported without a preprocessor)."
            )
        super().__init__(
            metadata,
            base64.b64decode(metadata["sentencepiece_model"]),
            base64.b64decode(metadata["detokenizer_model"]),
        )
        self.batch_size = int(metadata["batch_size"])
        self.runner = load_interpreter(path).get_signature_runner()

    def run_generate(self, feed):
        """Runs the fixed-batch graph over `feed` in chunks of its batch
        size, the last one padded with copies of its row 0."""
        size = self.batch_size
        total = len(feed["encoder_token_ids"])
        token_ids, invalid = [], []
        for start in range(0, total, size):
            chunk = {key: value[start : start + size] for key, value in feed.items()}
            count = len(chunk["encoder_token_ids"])
            if count < size:
                chunk = {
                    key: np.concatenate(
                        [value, np.repeat(value[:1], size - count, axis=0)]
                    )
                    for key, value in chunk.items()
                }
            outputs = self.runner(**chunk)
            token_ids.append(outputs["token_ids"][:count])
            if "invalid_inputs" in outputs:
                invalid.append(outputs["invalid_inputs"][:count])
        return (
            np.concatenate(token_ids),
            np.concatenate(invalid) if invalid else None,
        )


def main(argv=None):
    parser = argument_parser(__doc__.split("\n\n")[0], "the .tflite generate graph")
    args = parser.parse_args(argv)
    return print_generated(LiteRTPromptClient(args.model), args)


if __name__ == "__main__":
    sys.exit(main())
