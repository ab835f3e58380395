"""Resolves and validates the prompts of an export before any graph is built."""

import logging

import numpy as np

from keras_prompt.export.export_module import MODES
from keras_prompt.export.export_module import ExportModule
from keras_prompt.prompts.prompt_bank import PromptBank
from keras_prompt.prompts.prompt_bank import resolve_prompt

logger = logging.getLogger(__name__)


class ExportPrompts:
    """The validated prompts of one export: a baked prompt, a bank, or none.

    Every prompt file is read with `read_prompt_file` and checked with
    `check_prompt_compatible` against the model's backbone fingerprint,
    `prompt_length` and `hidden_dim`, so a prompt trained on another backbone
    is refused before anything is written. Raw arrays are only checked for
    shape and finiteness (they carry no fingerprint).

    A bank task may hold several prompts (an ensemble): the bank's array
    then has one row per prompt, in `PromptBank` prompt-id order (rows
    `0 .. num_tasks - 1` are the tasks' first prompts, so integer task ids
    of one-prompt-per-task banks are unchanged; the further prompts
    follow).

    Args:
        mode: `"baked"`, `"runtime"` or `"bank"`.
        array: `[P, H]` (baked), `[N, P, H]` (bank, `N` prompts) or `None`
            (runtime).
        task_names: list of bank task names (index = task id); `[]` otherwise.
        sources: human-readable origin of each prompt (file paths or
            `"<array>"`), in prompt-id order.
        prompt_length: `P`.
        hidden_dim: `H`.
        task_prompt_ids: bank: dict task name -> its prompt ids (rows of
            `array`); `{}` otherwise.
        task_labels: bank: dict task name -> label words, for the tasks
            whose prompts record them (or that were added with `labels=`).

    Example:
    ```python
    resolved = ExportPrompts.from_model(
        model, "bank", {"rte": ["rte_a.safetensors", "rte_b.safetensors"],
                        "sst2": "sst2.safetensors"}
    )
    resolved.task_names  # ["rte", "sst2"]
    resolved.task_prompt_ids  # {"rte": [0, 2], "sst2": [1]}
    ```
    """

    def __init__(
        self,
        mode,
        array,
        task_names,
        sources,
        prompt_length,
        hidden_dim,
        task_prompt_ids=None,
        task_labels=None,
    ):
        self.mode = mode
        self.array = array
        self.task_names = list(task_names)
        self.sources = list(sources)
        self.prompt_length = int(prompt_length)
        self.hidden_dim = int(hidden_dim)
        self.task_prompt_ids = dict(task_prompt_ids or {})
        self.task_labels = dict(task_labels or {})

    @property
    def ensemble_tasks(self):
        """Bank tasks with several prompts, in task-id order."""
        return [
            name for name in self.task_names
            if len(self.task_prompt_ids.get(name, ())) > 1
        ]

    def label_targets(self, model):
        """What an ensemble needs of each labelled task's label words, as
        `keras_prompt.ensemble()` uses them, or `{}` without a tokenizer.

        Returns:
            dict task name -> `{"words": [...], "token_ids": [[...], ...]
            (each word's tokens and `</s>`, the targets rank classification
            scores), "max_target_length": int}` (greedy outputs are
            decoded to this many tokens before they are matched against the
            words: the longest label plus `</s>`, at least 2, the default
            of `keras_prompt.evaluate()` and `ensemble()`).
        """
        from keras_prompt.export.metadata import is_causal
        from keras_prompt.export.metadata import tokenizer_of
        from keras_prompt.models.rank_classification import choice_tensors

        tokenizer = tokenizer_of(model)
        # A decoder-only model's label words are continuations after a
        # separator the prompt files do not pin down: no ensemble tables.
        if tokenizer is None or is_causal(model):
            return {}
        targets = {}
        for name, words in self.task_labels.items():
            _, target_ids, target_mask = choice_tensors(words, tokenizer)
            token_ids = [
                [int(t) for t, keep in zip(row, keep_row) if keep]
                for row, keep_row in zip(target_ids, target_mask)
            ]
            targets[name] = {
                "words": list(words),
                "token_ids": token_ids,
                "max_target_length": max(2, max(map(len, token_ids))),
            }
        return targets

    @classmethod
    def from_model(cls, model, mode, prompts):
        """Resolves `prompts` for `mode` against `model`'s backbone.

        Args:
            model: a `keras_prompt.PromptedT5Seq2SeqLM`.
            mode: `"baked"`, `"runtime"` or `"bank"`.
            prompts: `baked`: a prompt file path, a `[P, H]` array, or `None`
                for the model's current prompt. `bank`: a dict task name ->
                prompt file path or `[P, H]` array, or a list of those for
                several prompts (an ensemble; insertion order gives the
                integer task ids). `runtime`: must be `None`.

        Raises:
            PromptFileError: a prompt file is unreadable or was trained for
                another backbone / prompt length / hidden size.
            ValueError: bad `mode`, task names or array shapes.
        """
        if mode not in MODES:
            raise ValueError(
                f"`mode` must be one of {', '.join(MODES)}; got {mode!r}."
            )
        prompt_length = int(model.prompt_length)
        hidden_dim = int(model.hidden_dim)
        if mode == "runtime":
            if prompts is not None:
                raise ValueError(
                    "mode='runtime' takes the prompt as a serving input; do "
                    "not pass `prompts` (use mode='baked' or mode='bank' to "
                    "freeze prompts into the export)."
                )
            return cls(mode, None, [], [], prompt_length, hidden_dim)

        fingerprint = _fingerprint(model)
        if mode == "baked":
            if isinstance(prompts, dict):
                raise ValueError(
                    "mode='baked' takes one prompt (a file or an array); a "
                    "dict of tasks is for mode='bank'."
                )
            if prompts is None:
                array = np.asarray(model.get_prompt(), np.float32)
                source = "<model prompt>"
            else:
                array, source, _ = resolve_prompt(
                    prompts,
                    prompt_length=prompt_length,
                    hidden_dim=hidden_dim,
                    fingerprint=lambda: fingerprint,
                    label="prompt",
                )
            return cls(mode, array, [], [source], prompt_length, hidden_dim)

        # Bank: a dict of task prompts, or the model's own prompt bank.
        if prompts is None and len(getattr(model, "prompt_bank", ())):
            bank = model.prompt_bank
        elif not isinstance(prompts, dict) or not prompts:
            raise ValueError(
                "mode='bank' needs `prompts` as a non-empty dict task name -> "
                "prompt file, or list of prompt files for an ensemble (e.g. "
                "{'rte': 'rte.safetensors', 'sst2': ['sst2_a.safetensors', "
                "'sst2_b.safetensors']}), or a model whose `prompt_bank` holds "
                "tasks; got " + type(prompts).__name__ + "."
            )
        else:
            bank = PromptBank(prompt_length, hidden_dim, lambda: fingerprint)
            for name, value in prompts.items():
                bank.add(name, value)
        sources = bank.sources()
        task_prompt_ids = {name: bank.prompt_ids(name) for name in bank.names}
        for name, ids in task_prompt_ids.items():
            logger.debug(
                "Validated task %r (prompt ids %s) from %s.",
                name,
                ids,
                ", ".join(sources[i] for i in ids),
            )
        return cls(
            mode,
            bank.prompts(),
            bank.names,
            sources,
            prompt_length,
            hidden_dim,
            task_prompt_ids=task_prompt_ids,
            task_labels={
                name: bank.labels(name)
                for name in bank.names
                if bank.labels(name) is not None
            },
        )

    def build_module(self, model):
        """The `ExportModule` (`CausalExportModule` for a decoder-only
        model) of `model` with these prompts."""
        from keras_prompt.export.causal_export_module import CausalExportModule
        from keras_prompt.export.metadata import is_causal

        module_class = CausalExportModule if is_causal(model) else ExportModule
        return module_class(
            model,
            self.mode,
            prompts=self.array,
            end_token_id=end_token_id(model),
        )


def end_token_id(model):
    """The id that ends generation: the tokenizer's `</s>` (1 for T5)."""
    preprocessor = getattr(model, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    token_id = getattr(tokenizer, "end_token_id", None)
    return 1 if token_id is None else int(token_id)


def _fingerprint(model):
    if hasattr(model, "backbone_fingerprint"):
        return model.backbone_fingerprint()
    from keras_prompt.prompts.prompt_file import backbone_fingerprint

    return backbone_fingerprint(model.backbone)
