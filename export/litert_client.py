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
    # the vote of all of rte's prompts (a bank holding an ensemble)
    python litert_client.py bank_generate.tflite \
        --forward-model bank_forward.tflite --ensemble --task rte "rte ..."

Example (Python):
    client = LiteRTPromptClient("bank_generate.tflite")
    client.generate(["rte sentence1: ...", "sst2 sentence: ..."],
                    tasks=["rte", "sst2"])
    voter = LiteRTPromptClient("bank_generate.tflite",
                               forward_model="bank_forward.tflite")
    voter.ensemble(["rte sentence1: ..."], "rte")["outputs"]
"""

import base64
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompt_client import PromptClient  # noqa: E402
from prompt_client import check_seq2seq  # noqa: E402
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


def load_description(path):
    """The JSON description `<path>.json` of a LiteRT export."""
    description = path + METADATA_SUFFIX
    if not os.path.isfile(description):
        raise ValueError(
            f"No export description '{description}' next to '{path}': "
            "keep the .json file keras-prompt wrote with the model."
        )
    with open(description, encoding="utf-8") as file:
        return json.load(file)


def run_in_batches(runner, size, feed, output):
    """Runs a fixed-batch graph over `feed` in chunks of its batch size,
    the last one padded with copies of its row 0; returns `(output,
    invalid_inputs or None)`."""
    total = len(feed["encoder_token_ids"])
    results, invalid = [], []
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
        outputs = runner(**chunk)
        results.append(outputs[output][:count])
        if "invalid_inputs" in outputs:
            invalid.append(outputs["invalid_inputs"][:count])
    return (
        np.concatenate(results),
        np.concatenate(invalid) if invalid else None,
    )


class LiteRTPromptClient(PromptClient):
    """Runs a keras-prompt LiteRT generate graph on strings.

    Args:
        path: the `.tflite` file of a `graph="generate"` export (its
            description `<path>.json` must lie next to it).
        forward_model: optional `.tflite` file of the same export's
            `graph="forward"` (with its description); `ensemble()` scores
            label words with it to break tied votes.
    """

    def __init__(self, path, forward_model=None):
        metadata = load_description(path)
        check_seq2seq(metadata, path)
        if "sentencepiece_model" not in metadata:
            raise ValueError(
                f"'{path}{METADATA_SUFFIX}' carries no SentencePiece model "
                "(the model was exported without a preprocessor)."
            )
        super().__init__(
            metadata,
            base64.b64decode(metadata["sentencepiece_model"]),
            base64.b64decode(metadata["detokenizer_model"]),
        )
        self.batch_size = int(metadata["batch_size"])
        self.runner = load_interpreter(path).get_signature_runner()
        self.forward_runner = None
        if forward_model is not None:
            self.check_forward_metadata(
                load_description(forward_model), forward_model
            )
            self.forward_runner = load_interpreter(
                forward_model
            ).get_signature_runner()

    def run_generate(self, feed):
        return run_in_batches(self.runner, self.batch_size, feed, "token_ids")

    def run_forward(self, feed):
        """The forward graph over `feed`, its decoder inputs padded to the
        graph's fixed decoder length (causal: the padding changes no logit
        of the positions before it)."""
        if self.forward_runner is None:
            return super().run_forward(feed)
        metadata = self.forward_metadata
        length = int(metadata["decoder_sequence_length"])
        given = feed["decoder_token_ids"].shape[1]
        if given > length:
            raise ValueError(
                f"The forward graph's fixed decoder length is {length}, "
                f"shorter than the {given} tokens of the longest label word; "
                "export it with a larger --decoder-sequence-length."
            )
        feed = dict(feed)
        for key in ("decoder_token_ids", "decoder_padding_mask"):
            feed[key] = np.pad(feed[key], ((0, 0), (0, length - given)))
        logits, invalid = run_in_batches(
            self.forward_runner, int(metadata["batch_size"]), feed, "logits"
        )
        return logits[:, :given], invalid


def main(argv=None):
    parser = argument_parser(__doc__.split("\n\n")[0], "the .tflite generate graph")
    args = parser.parse_args(argv)
    client = LiteRTPromptClient(args.model, forward_model=args.forward_model)
    return print_generated(client, args)


if __name__ == "__main__":
    sys.exit(main())
