"""What the ONNX Runtime and LiteRT clients share: the export's
description, text in and out, the task or prompt inputs, and prompt
ensembles (a majority vote over a task's prompts).

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
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="bank mode: print the vote of all of the --task's prompts (one "
        "--task; needs --forward-model to break ties)",
    )
    parser.add_argument(
        "--forward-model",
        help="the forward graph of the same export (scores label words to "
        "break tied ensemble votes)",
    )
    return parser


def print_generated(client, args):
    """Generates (or votes, with `--ensemble`) for the parsed command line
    and prints one line per text."""
    tasks = None
    if args.task:
        tasks = args.task[0] if len(args.task) == 1 else args.task
    if args.ensemble:
        if not isinstance(tasks, str):
            raise SystemExit(
                "--ensemble takes exactly one --task (the ensemble's task)."
            )
        outputs = client.ensemble(args.texts, tasks)["outputs"]
    else:
        prompts = np.load(args.prompt) if args.prompt else None
        outputs = client.generate(args.texts, tasks=tasks, prompts=prompts)
    for text in outputs:
        sys.stdout.write(text + "\n")
    return 0


def prompt_votes(prompt_labels, num_labels):
    """Votes per label `[B, num_labels]` of the prompts' labels `[N, B]`
    (-1, no label word, is no vote)."""
    votes = np.zeros((prompt_labels.shape[1], num_labels), np.int64)
    for labels in prompt_labels:
        voted = np.flatnonzero(labels >= 0)
        votes[voted, labels[voted]] += 1
    return votes


def majority_vote(prompt_labels, num_labels, tie_scores):
    """The rule of `keras_prompt.ensemble(method="vote")` and the
    SavedModel's `ensemble_text`: the label with the most votes wins; a tie
    goes to the tied label with the highest mean (over the prompts)
    log-likelihood; no vote at all gives -1.

    Args:
        prompt_labels: int `[N, B]`, each prompt's label per example.
        num_labels: the number of label words `C`.
        tie_scores: `fn(examples) -> float [N, len(examples), C]`, the
            prompts' label-word log-likelihoods on those examples; called
            only for the examples whose vote ties.

    Returns:
        int64 `[B]` label indices.
    """
    votes = prompt_votes(prompt_labels, num_labels)
    most = votes.max(axis=1, keepdims=True)
    winners = np.argmax(votes, axis=1)
    tied = ((votes == most).sum(axis=1) > 1) & (most[:, 0] > 0)
    examples = np.flatnonzero(tied)
    if examples.size:
        mean = np.mean(tie_scores(examples), axis=0)
        candidates = (votes == most)[examples]
        winners[examples] = np.argmax(np.where(candidates, mean, -np.inf), 1)
    return np.where(most[:, 0] > 0, winners, -1).astype(np.int64)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# What a forward graph must share with the generate graph it scores for.
_SAME_EXPORT_KEYS = (
    "backbone_fingerprint",
    "mode",
    "task_names",
    "prompt_sources",
    "task_prompt_ids",
)


def check_seq2seq(metadata, path):
    """Raises `ValueError` for a decoder-only model's export: these text
    clients tokenize with SentencePiece for T5; a decoder-only export's
    graphs run on ids."""
    if metadata.get("model_type") == "causal_lm":
        raise ValueError(
            f"'{path}' is a decoder-only model's export; the text clients "
            "are for T5 exports. Feed its graph token ids (inputs token_ids, "
            "padding_mask; output new_token_ids), or serve text through the "
            "SavedModel's serving_default."
        )


class PromptClient:
    """Base of the keras-prompt export clients.

    Subclasses load the model and implement `run_generate(feed) -> (token
    ids, invalid_inputs or None)`; this class turns strings into feeds, checks
    the answer and turns ids back into strings.

    Inputs are checked before the model runs (tasks, prompts), and the
    graph's own verdict (`invalid_inputs`, one flag sum per row; exports
    made before it existed have none) is checked after: any refused row
    fails the whole call with a `ValueError` naming the rows and why.

    Prompt ensembles (`ensemble()`): in a bank, a task may hold several
    prompts (`task_prompt_ids` in the description); each example runs once
    with each of them and they vote. Breaking a tied vote needs the export's
    forward graph too: subclasses that were given one implement
    `run_forward(feed) -> (logits, invalid_inputs or None)`.

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
        self.num_prompts = int(metadata.get("num_prompts", len(self.task_names)))
        self.task_prompt_ids = dict(metadata.get("task_prompt_ids") or {})
        self.task_labels = dict(metadata.get("task_labels") or {})
        self.text = PromptText(metadata, tokenizer_proto, detokenizer_proto)
        self.forward_metadata = None

    def check_forward_metadata(self, metadata, path):
        """Raises `ValueError` unless `metadata` describes the forward graph
        of this client's export (same backbone and prompts)."""
        if metadata.get("graph") != "forward":
            raise ValueError(
                f"'{path}' is a '{metadata.get('graph')}' graph; "
                "`forward_model` takes the 'forward' graph of the same export."
            )
        for key in _SAME_EXPORT_KEYS:
            if metadata.get(key) != self.metadata.get(key):
                raise ValueError(
                    f"'{path}' is not the forward graph of this export: its "
                    f"'{key}' is {metadata.get(key)!r}, the generate graph's "
                    f"{self.metadata.get(key)!r}. Export both graphs together "
                    "(keras-prompt export --graph both)."
                )
        self.forward_metadata = metadata

    def run_forward(self, feed):
        raise ValueError(
            "Breaking a tied ensemble vote scores the label words with the "
            "export's forward graph: pass `forward_model=` (the "
            "MODEL_forward file written next to the generate graph)."
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
            if not 0 <= task_id < self.num_prompts:
                raise ValueError(
                    f"Task id {task_id} is out of range [0, "
                    f"{self.num_prompts}) (tasks: {self.task_names}"
                    + (
                        f"; prompt ids: {self.task_prompt_ids}"
                        if self.num_prompts != len(self.task_names)
                        else ""
                    )
                    + ")."
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

    def ensemble(self, texts, task):
        """The vote of all of `task`'s prompts on each text.

        Every text runs once with each of the task's prompts (one call of
        the generate graph on `N * B` rows, `task` = the prompt ids); each
        prompt's output, cut to the task's `max_target_length` tokens, is
        matched (stripped) against its label words, and the prompts vote
        as `keras_prompt.ensemble(method="vote")` and the SavedModel's
        `ensemble_text` do: the most votes win, a tie goes to the tied
        label with the highest mean log-likelihood over the prompts (scored
        with the forward graph, for the tied texts only), no vote gives -1
        and the output "".

        Args:
            texts: a string or list of strings.
            task: the task's name or task id.

        Returns:
            dict with `outputs` (the voted label words, "" for no vote),
            `label` (int64 `[B]`, -1 for no vote) and `prompt_labels`
            (int64 `[B, N]`, each prompt's label, -1 for no label word).
        """
        if self.mode != "bank":
            raise ValueError(
                "Ensembles need a prompt-bank export (mode 'bank') holding "
                f"the task's prompts; this export's mode is '{self.mode}'."
            )
        task_id = int(self.task_ids(task, 1)[0])
        if task_id >= len(self.task_names):
            raise ValueError(
                f"An ensemble takes a task name or task id in [0, "
                f"{len(self.task_names)}); {task_id} is a prompt id (tasks: "
                f"{self.task_names})."
            )
        name = self.task_names[task_id]
        labels = self.task_labels.get(name)
        if not labels:
            raise ValueError(
                f"Task '{name}' has no label words in the export description "
                "(its prompt files record no `labels`), so its prompts cannot "
                "vote; tasks with label words: "
                f"{sorted(self.task_labels)}."
            )
        prompt_ids = np.asarray(self.task_prompt_ids[name], np.int32)
        texts = [texts] if isinstance(texts, str) else list(texts)
        words = list(labels["words"])
        length = int(labels["max_target_length"]) + 1
        token_ids = self.generate_ids(
            texts * len(prompt_ids),
            tasks=np.repeat(prompt_ids, len(texts)),
        )
        if token_ids.shape[1] < length:
            raise ValueError(
                f"The generate graph decodes {token_ids.shape[1]} positions, "
                f"fewer than the {length} task '{name}' needs for its label "
                "words; export it with a larger max_decode_length."
            )
        outputs = [text.strip() for text in self.text.decode(token_ids[:, :length])]
        prompt_labels = np.array(
            [words.index(text) if text in words else -1 for text in outputs],
            np.int64,
        ).reshape(len(prompt_ids), len(texts))

        def tie_scores(examples):
            tied = [texts[i] for i in examples]
            scores = self.label_scores(
                tied * len(prompt_ids),
                np.repeat(prompt_ids, len(tied)),
                labels["token_ids"],
            )
            return scores.reshape(len(prompt_ids), len(tied), len(words))

        label = majority_vote(prompt_labels, len(words), tie_scores)
        return {
            "outputs": [words[i] if i >= 0 else "" for i in label],
            "label": label,
            "prompt_labels": prompt_labels.T,
        }

    def label_scores(self, texts, tasks, label_token_ids):
        """Log-likelihood of each label word `[len(texts), C]` (the sum of
        its target tokens' log-probabilities, `</s>` included, as
        `model.score()`), from the forward graph's logits."""
        feed = self.feed(texts, tasks)
        count = len(label_token_ids)
        length = max(len(ids) for ids in label_token_ids)
        targets = np.zeros((count, length), np.int32)
        mask = np.zeros((count, length), np.int32)
        for row, ids in enumerate(label_token_ids):
            targets[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        # The targets shifted right behind the start token 0.
        decoder = np.zeros_like(targets)
        decoder[:, 1:] = targets[:, :-1]
        # Row `r * C + c`: text `r` with label word `c`.
        feed = {key: np.repeat(value, count, axis=0) for key, value in feed.items()}
        feed["decoder_token_ids"] = np.tile(decoder, (len(texts), 1))
        feed["decoder_padding_mask"] = np.tile(mask, (len(texts), 1))
        logits, invalid_inputs = self.run_forward(feed)
        self.check_answer(invalid_inputs)
        log_probs = log_softmax(np.asarray(logits, np.float32)[:, :length])
        rows_targets = np.tile(targets, (len(texts), 1))
        picked = np.take_along_axis(log_probs, rows_targets[..., None], -1)[..., 0]
        scores = (picked * feed["decoder_padding_mask"]).sum(axis=-1)
        return scores.reshape(len(texts), count)
