"""Text -> text with a keras-prompt ONNX export, without TensorFlow.

Needs only `onnxruntime`, `sentencepiece` and `numpy`. Point it at a
*generate* graph written by `keras_prompt.export.export_onnx(...,
graph="generate")` (or `keras-prompt export --format onnx`): the file carries
its SentencePiece models and a JSON description (task names, sequence length,
the text rule) in its metadata, so nothing else is needed.

Tokenization matches the model's KerasHub preprocessor and decoding follows
keras-prompt's one detokenization rule (see `prompt_text.py`): sentinels come
out as `<extra_id_N>`, ids without a piece as nothing.

Usage:
    python onnx_client.py bank_generate.onnx --task rte "rte sentence1: ..."
    python onnx_client.py runtime_generate.onnx --prompt rte.npy "some text"
    # the vote of all of rte's prompts (a bank holding an ensemble)
    python onnx_client.py bank_generate.onnx --forward-model bank_forward.onnx \
        --ensemble --task rte "rte sentence1: ..."

Example (Python):
    client = OnnxPromptClient("bank_generate.onnx")
    client.task_names                  # ["rte", "sst2"]
    client.generate(["rte sentence1: ...", "sst2 sentence: ..."],
                    tasks=["rte", "sst2"])
    voter = OnnxPromptClient("bank_generate.onnx",
                             forward_model="bank_forward.onnx")
    voter.ensemble(["rte sentence1: ..."], "rte")["outputs"]
"""

import base64
import json
import os
import sys

import onnxruntime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompt_client import PromptClient  # noqa: E402
from prompt_client import argument_parser  # noqa: E402
from prompt_client import check_seq2seq  # noqa: E402
from prompt_client import print_generated  # noqa: E402

METADATA_KEY = "keras_prompt.export"
SENTENCEPIECE_KEY = "keras_prompt.sentencepiece_model"
DETOKENIZER_KEY = "keras_prompt.detokenizer_model"
INVALID_INPUTS = "invalid_inputs"


class OnnxPromptClient(PromptClient):
    """Runs a keras-prompt ONNX generate graph on strings.

    Args:
        path: the `.onnx` file of a `graph="generate"` export.
        sentencepiece_model: optional path of a SentencePiece `.model` file,
            for exports made from a model without a preprocessor.
        providers: onnxruntime execution providers.
        forward_model: optional `.onnx` file of the same export's
            `graph="forward"`; `ensemble()` scores label words with it to
            break tied votes.
    """

    def __init__(
        self, path, sentencepiece_model=None, providers=None, forward_model=None
    ):
        providers = providers or ["CPUExecutionProvider"]
        self.session = onnxruntime.InferenceSession(path, providers=providers)
        props = _export_props(self.session, path)
        check_seq2seq(json.loads(props[METADATA_KEY]), path)
        if sentencepiece_model is not None:
            with open(sentencepiece_model, "rb") as file:
                tokenizer_proto = detokenizer_proto = file.read()
        elif SENTENCEPIECE_KEY in props:
            tokenizer_proto = base64.b64decode(props[SENTENCEPIECE_KEY])
            detokenizer_proto = base64.b64decode(
                props.get(DETOKENIZER_KEY, props[SENTENCEPIECE_KEY])
            )
        else:
            raise ValueError(
                f"'{path}' carries no SentencePiece model; pass "
                "`sentencepiece_model=` (the tokenizer's .model file)."
            )
        super().__init__(
            json.loads(props[METADATA_KEY]), tokenizer_proto, detokenizer_proto
        )
        self.forward_session = None
        if forward_model is not None:
            session = onnxruntime.InferenceSession(
                forward_model, providers=providers
            )
            metadata = json.loads(_export_props(session, forward_model)[METADATA_KEY])
            self.check_forward_metadata(metadata, forward_model)
            self.forward_session = session

    def run_generate(self, feed):
        return _run(self.session, "token_ids", feed)

    def run_forward(self, feed):
        if self.forward_session is None:
            return super().run_forward(feed)
        return _run(self.forward_session, "logits", feed)


def _export_props(session, path):
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError(
            f"'{path}' is not a keras-prompt export (no '{METADATA_KEY}' "
            "metadata)."
        )
    return props


def _run(session, output, feed):
    """`(output, invalid_inputs or None)` of one session run."""
    names = [value.name for value in session.get_outputs()]
    wanted = [name for name in (output, INVALID_INPUTS) if name in names]
    outputs = dict(zip(wanted, session.run(wanted, feed)))
    return outputs[output], outputs.get(INVALID_INPUTS)


def main(argv=None):
    parser = argument_parser(__doc__.split("\n\n")[0], "the .onnx generate graph")
    parser.add_argument("--sentencepiece-model", help="tokenizer .model file")
    args = parser.parse_args(argv)
    client = OnnxPromptClient(
        args.model,
        sentencepiece_model=args.sentencepiece_model,
        forward_model=args.forward_model,
    )
    return print_generated(client, args)


if __name__ == "__main__":
    sys.exit(main())
