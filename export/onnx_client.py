"""Text -> text with a keras-prompt ONNX export, without TensorFlow.

Needs only `onnxruntime`, `sentencepiece` and `numpy`. Point it at a
*generate* graph written by `keras_prompt.export.export_onnx(...,
graph="generate")` (or `keras-prompt export --format onnx`): the file carries
its SentencePiece model and a JSON description (task names, sequence length,
special token ids) in its metadata, so nothing else is needed.

Tokenization matches the model's KerasHub preprocessor: SentencePiece ids
truncated to `encoder_sequence_length - 1`, then `</s>`, then padding 0.
Detokenization drops the decoder start token, everything from `</s>` on,
and the special ids, like `model.generate()`.

Usage:
    python onnx_client.py bank_generate.onnx --task rte "rte sentence1: ..."
    python onnx_client.py runtime_generate.onnx --prompt rte.npy "some text"

Example (Python):
    client = OnnxPromptClient("bank_generate.onnx")
    client.task_names                  # ["rte", "sst2"]
    client.generate(["rte sentence1: ...", "sst2 sentence: ..."],
                    tasks=["rte", "sst2"])
"""

import argparse
import base64
import json
import sys

import numpy as np
import onnxruntime
import sentencepiece

METADATA_KEY = "keras_prompt.export"
SENTENCEPIECE_KEY = "keras_prompt.sentencepiece_model"


class OnnxPromptClient:
    """Runs a keras-prompt ONNX generate graph on strings.

    Args:
        path: the `.onnx` file of a `graph="generate"` export.
        sentencepiece_model: optional path of a SentencePiece `.model` file,
            for exports made from a model without a preprocessor.
        providers: onnxruntime execution providers.
    """

    def __init__(self, path, sentencepiece_model=None, providers=None):
        self.session = onnxruntime.InferenceSession(
            path, providers=providers or ["CPUExecutionProvider"]
        )
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ValueError(
                f"'{path}' is not a keras-prompt export (no '{METADATA_KEY}' "
                "metadata)."
            )
        self.metadata = json.loads(props[METADATA_KEY])
        if self.metadata.get("graph") != "generate":
            raise ValueError(
                f"'{path}' is a '{self.metadata.get('graph')}' graph; the "
                "client needs the 'generate' graph (export with "
                "graph='generate')."
            )
        self.mode = self.metadata["mode"]
        self.task_names = list(self.metadata.get("task_names") or [])
        self.encoder_sequence_length = int(
            self.metadata["encoder_sequence_length"]
        )
        self.end_token_id = int(self.metadata["end_token_id"])
        self.strip_token_ids = set(self.metadata.get("strip_token_ids", [0, 1]))
        if sentencepiece_model is not None:
            self.tokenizer = sentencepiece.SentencePieceProcessor(
                model_file=sentencepiece_model
            )
        elif SENTENCEPIECE_KEY in props:
            self.tokenizer = sentencepiece.SentencePieceProcessor(
                model_proto=base64.b64decode(props[SENTENCEPIECE_KEY])
            )
        else:
            raise ValueError(
                f"'{path}' carries no SentencePiece model; pass "
                "`sentencepiece_model=` (the tokenizer's .model file)."
            )

    def task_ids(self, tasks, batch_size):
        """Task names or integer ids -> int32 ids; raises `ValueError`
        naming any unknown name or out-of-range id."""
        if tasks is None:
            raise ValueError(
                "This is a prompt-bank export: pass `tasks` (one task name or "
                f"id per input; known tasks: {self.task_names})."
            )
        if isinstance(tasks, (str, int)):
            tasks = [tasks] * batch_size
        tasks = list(tasks)
        if len(tasks) != batch_size:
            raise ValueError(
                f"Got {len(tasks)} tasks for {batch_size} inputs; give one per "
                "input."
            )
        ids = []
        for task in tasks:
            if isinstance(task, (int, np.integer)) and not isinstance(
                task, bool
            ):
                task_id = int(task)
            elif isinstance(task, str) and task in self.task_names:
                task_id = self.task_names.index(task)
            elif isinstance(task, str) and task.isdigit():
                task_id = int(task)
            else:
                raise ValueError(
                    f"Unknown task {task!r}; known tasks: {self.task_names}."
                )
            if not 0 <= task_id < len(self.task_names):
                raise ValueError(
                    f"Task id {task_id} is out of range [0, "
                    f"{len(self.task_names)}) (tasks: {self.task_names})."
                )
            ids.append(task_id)
        return np.asarray(ids, np.int32)

    def encode(self, texts):
        """Strings -> `(encoder_token_ids, encoder_padding_mask)` int32."""
        length = self.encoder_sequence_length
        token_ids = np.zeros((len(texts), length), np.int32)
        padding_mask = np.zeros((len(texts), length), np.int32)
        for row, pieces in enumerate(self.tokenizer.encode(list(texts))):
            pieces = list(pieces)[: length - 1] + [self.end_token_id]
            token_ids[row, : len(pieces)] = pieces
            padding_mask[row, : len(pieces)] = 1
        return token_ids, padding_mask

    def decode(self, token_ids):
        """Generated ids `[B, L]` -> strings."""
        texts = []
        for row in np.asarray(token_ids):
            kept = []
            for token in row[1:].tolist():  # column 0: decoder start token
                if token == self.end_token_id:
                    break
                if token not in self.strip_token_ids:
                    kept.append(token)
            texts.append(self.tokenizer.decode(kept))
        return texts

    def generate_ids(self, texts, tasks=None, prompts=None):
        """Strings -> generated token ids `[B, max_decode_length]`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        token_ids, padding_mask = self.encode(texts)
        feed = {
            "encoder_token_ids": token_ids,
            "encoder_padding_mask": padding_mask,
        }
        if self.mode == "bank":
            feed["task"] = self.task_ids(tasks, len(texts))
        elif self.mode == "runtime":
            if prompts is None:
                raise ValueError(
                    "This is a runtime-prompt export: pass `prompts` "
                    f"[batch, {self.metadata['prompt_length']}, "
                    f"{self.metadata['hidden_dim']}] (or one [P, H] prompt)."
                )
            prompts = np.asarray(prompts, np.float32)
            if prompts.ndim == 2:
                prompts = np.broadcast_to(
                    prompts, (len(texts),) + prompts.shape
                )
            expected = (
                len(texts),
                self.metadata["prompt_length"],
                self.metadata["hidden_dim"],
            )
            if prompts.shape != expected:
                raise ValueError(
                    f"`prompts` must have shape {expected}; got {prompts.shape}."
                )
            feed["prompts"] = np.ascontiguousarray(prompts)
        elif tasks is not None or prompts is not None:
            raise ValueError(
                "This export has its prompt baked in; do not pass tasks or prompts."
            )
        return self.session.run(["token_ids"], feed)[0]

    def generate(self, texts, tasks=None, prompts=None):
        """Strings -> generated strings (one per input)."""
        single = isinstance(texts, str)
        outputs = self.decode(
            self.generate_ids(texts, tasks=tasks, prompts=prompts)
        )
        return outputs[0] if single else outputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .onnx generate graph")
    parser.add_argument("texts", nargs="+", help="input strings")
    parser.add_argument(
        "--task",
        action="append",
        help="task name or id (bank mode); once, " "or once per input",
    )
    parser.add_argument(
        "--prompt", help="runtime mode: a .npy file with a [P, H] prompt"
    )
    parser.add_argument("--sentencepiece-model", help="tokenizer .model file")
    args = parser.parse_args(argv)
    client = OnnxPromptClient(
        args.model, sentencepiece_model=args.sentencepiece_model
    )
    tasks = None
    if args.task:
        tasks = args.task[0] if len(args.task) == 1 else args.task
    prompts = np.load(args.prompt) if args.prompt else None
    for text in client.generate(args.texts, tasks=tasks, prompts=prompts):
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
