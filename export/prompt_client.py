"""What the ONNX Runtime and LiteRT clients share: the export's
description, text in and out, and the task or prompt inputs.

Needs only `numpy` and `sentencepiece` (see `prompt_text.py`).
"""

import argparse
import sys

import numpy as np

from prompt_text import PromptText


def argument_parser(description, model_help):
    """The command line both clients share (plus their own options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("model", help=model_help)
    parser.add_argument("texts", nargs="+", help="input strings")
    parser.add_argument(
        "--task",
        action="append",
        help="task name or id (bank mode); once, or once per input",
    )
    parser.add_argument(
        "--prompt", help="runtime mode: a .npy file with a [P, H] prompt"
    )
    return parser


def print_generated(client, args):
    """Generates for the parsed command line and prints one line per text."""
    tasks = None
    if args.task:
        tasks = args.task[0] if len(args.task) == 1 else args.task
    prompts = np.load(args.prompt) if args.prompt else None
    for text in client.generate(args.texts, tasks=tasks, prompts=prompts):
        sys.stdout.write(text + "\n")
    return 0


class PromptClient:
    """Base of the keras-prompt export clients.

    Subclasses load the model and implement `run_generate(feed) -> (token
    ids, invalid_inputs or None)`; this class turns strings into feeds, checks
    the answer and turns ids back into strings.

    Inputs are checked before the model runs (tasks, prompts), and the
    graph's own verdict (`invalid_inputs`, one flag sum per row; exports
    made before it existed have none) is checked after: any refused row
    fails the whole call with a `ValueError` naming the rows and why.

    Args:
        metadata: the export's JSON description (dict).
        tokenizer_proto: serialized SentencePiece model for encoding.
        detokenizer_proto: the sentinel-aware SentencePiece model for
            decoding.
    """

    def __init__(self, metadata, tokenizer_proto, detokenizer_proto=None):
        self.metadata = metadata
        if metadata.get("graph") != "generate":
            raise ValueError(
                f"This is a '{metadata.get('graph')}' graph; the client needs "
                "the 'generate' graph (export with graph='generate')."
            )
        self.mode = metadata["mode"]
        self.task_names = list(metadata.get("task_names") or [])
        self.text = PromptText(metadata, tokenizer_proto, detokenizer_proto)

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

    def runtime_prompts(self, prompts, batch_size):
        """`[P, H]` or `[B, P, H]` -> float32 `[B, P, H]`, checked."""
        expected = (
            batch_size,
            self.metadata["prompt_length"],
            self.metadata["hidden_dim"],
        )
        if prompts is None:
            raise ValueError(
                "This is a runtime-prompt export: pass `prompts` "
                f"{list(expected)} (or one [P, H] prompt)."
            )
        prompts = np.asarray(prompts, np.float32)
        if prompts.ndim == 2:
            prompts = np.broadcast_to(prompts, (batch_size,) + prompts.shape)
        if prompts.shape != expected:
            raise ValueError(
                f"`prompts` must have shape {expected}; got {prompts.shape}."
            )
        finite = np.isfinite(prompts).all(axis=(1, 2))
        if not finite.all():
            raise ValueError(
                "`prompts` has NaN or infinite values in rows "
                f"{np.flatnonzero(~finite).tolist()}; send finite prompts."
            )
        return np.ascontiguousarray(prompts)

    def check_answer(self, invalid_inputs):
        """Raises `ValueError` naming each row the graph refused and why."""
        if invalid_inputs is None:
            return
        rows = np.flatnonzero(np.asarray(invalid_inputs))
        if not rows.size:
            return
        meanings = self.metadata.get("invalid_inputs_flags", {})
        details = []
        for row in rows[:16]:
            value = int(invalid_inputs[row])
            reasons = [
                text for flag, text in meanings.items() if value & int(flag)
            ] or [f"flags {value}"]
            details.append(f"row {row}: {', '.join(reasons)}")
        raise ValueError(
            f"The model refused {rows.size} of {len(invalid_inputs)} rows "
            f"({'; '.join(details)})."
        )

    def feed(self, texts, tasks=None, prompts=None, length=None):
        """The input feed of a batch of strings."""
        token_ids, padding_mask = self.text.encode(texts, length)
        feed = {
            "encoder_token_ids": token_ids,
            "encoder_padding_mask": padding_mask,
        }
        if self.mode == "bank":
            feed["task"] = self.task_ids(tasks, len(texts))
        elif self.mode == "runtime":
            feed["prompts"] = self.runtime_prompts(prompts, len(texts))
        elif tasks is not None or prompts is not None:
            raise ValueError(
                "This export has its prompt baked in; do not pass tasks or "
                "prompts."
            )
        return feed

    def generate_ids(self, texts, tasks=None, prompts=None):
        """Strings -> generated token ids `[B, max_decode_length]`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        token_ids, invalid_inputs = self.run_generate(
            self.feed(texts, tasks, prompts)
        )
        self.check_answer(invalid_inputs)
        return token_ids

    def generate(self, texts, tasks=None, prompts=None):
        """Strings -> generated strings (one per input)."""
        single = isinstance(texts, str)
        outputs = self.text.decode(self.generate_ids(texts, tasks, prompts))
        return outputs[0] if single else outputs
