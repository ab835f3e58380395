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

    Args:
        mode: `"baked"`, `"runtime"` or `"bank"`.
        array: `[P, H]` (baked), `[N, P, H]` (bank) or `None` (runtime).
        task_names: list of bank task names (index = task id); `[]` otherwise.
        sources: human-readable origin of each prompt (file paths or
            `"<array>"`).
        prompt_length: `P`.
        hidden_dim: `H`.

    Example:
    ```python
    resolved = ExportPrompts.from_model(
        model, "bank", {"rte": "rte.safetensors", "sst2": "sst2.safetensors"}
    )
    resolved.task_names  # ["rte", "sst2"]
    ```
    """

    def __init__(
        self, mode, array, task_names, sources, prompt_length, hidden_dim
    ):
        self.mode = mode
        self.array = array
        self.task_names = list(task_names)
        self.sources = list(sources)
        self.prompt_length = int(prompt_length)
        self.hidden_dim = int(hidden_dim)

    @classmethod
    def from_model(cls, model, mode, prompts):
        """Resolves `prompts` for `mode` against `model`'s backbone.

        Args:
            model: a `keras_prompt.PromptedT5Seq2SeqLM`.
            mode: `"baked"`, `"runtime"` or `"bank"`.
            prompts: `baked`: a prompt file path, a `[P, H]` array, or `None`
                for the model's current prompt. `bank`: a dict task name ->
                prompt file path or `[P, H]` array (insertion order gives the
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
                array, source = resolve_prompt(
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
                "prompt file (e.g. {'rte': 'rte.safetensors', 'sst2': "
                "'sst2.safetensors'}) or a model whose `prompt_bank` holds "
                "tasks; got " + type(prompts).__name__ + "."
            )
        else:
            bank = PromptBank(prompt_length, hidden_dim, lambda: fingerprint)
            for name, value in prompts.items():
                bank.add(name, value)
        for name in bank.names:
            logger.debug("Validated task %r from %s.", name, bank.source(name))
        return cls(
            mode,
            bank.prompts(),
            bank.names,
            [bank.source(name) for name in bank.names],
            prompt_length,
            hidden_dim,
        )

    def build_module(self, model):
        """The `ExportModule` of `model` with these prompts."""
        return ExportModule(
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
