"""Resolves and validates the prompts of an export before any graph is built."""

import logging
import os
import re

import numpy as np

from keras_prompt.export.t5_inference_module import MODES
from keras_prompt.export.t5_inference_module import T5InferenceModule
from keras_prompt.export.t5_inference_module import extract_t5_weights

logger = logging.getLogger(__name__)

_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _is_path(value):
    return isinstance(value, (str, bytes, os.PathLike))


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
                array, source = _load_one(
                    prompts, fingerprint, prompt_length, hidden_dim, "prompt"
                )
            return cls(mode, array, [], [source], prompt_length, hidden_dim)

        # Bank.
        if not isinstance(prompts, dict) or not prompts:
            raise ValueError(
                "mode='bank' needs `prompts` as a non-empty dict task name -> "
                "prompt file (e.g. {'rte': 'rte.safetensors', 'sst2': "
                "'sst2.safetensors'}); got " + type(prompts).__name__ + "."
            )
        arrays, names, sources = [], [], []
        for name, value in prompts.items():
            if not isinstance(name, str) or not _TASK_NAME.match(name):
                raise ValueError(
                    f"Invalid task name {name!r}: task names must start with a "
                    "letter or underscore and contain only letters, digits, "
                    "'_', '-' and '.' (integer strings are reserved for task "
                    "ids)."
                )
            array, source = _load_one(
                value, fingerprint, prompt_length, hidden_dim, f"task {name!r}"
            )
            arrays.append(array)
            names.append(name)
            sources.append(source)
        return cls(
            mode, np.stack(arrays, 0), names, sources, prompt_length, hidden_dim
        )

    def build_module(self, model, portable=False):
        """Copies `model`'s backbone and these prompts into a
        `T5InferenceModule` (`portable=True` for ONNX)."""
        config, weights = extract_t5_weights(model.backbone)
        return T5InferenceModule(
            config,
            weights,
            self.mode,
            prompts=self.array,
            prompt_length=self.prompt_length,
            end_token_id=end_token_id(model),
            portable=portable,
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


def _load_one(value, fingerprint, prompt_length, hidden_dim, label):
    from keras_prompt.prompts.prompt_file import check_prompt_compatible
    from keras_prompt.prompts.prompt_file import read_prompt_file

    if _is_path(value):
        path = os.fsdecode(value)
        prompt, metadata = read_prompt_file(path)
        check_prompt_compatible(
            metadata,
            prompt,
            fingerprint=fingerprint,
            prompt_length=prompt_length,
            hidden_dim=hidden_dim,
            source=f"{label} ('{path}')",
        )
        logger.info("Validated %s from %s against the backbone.", label, path)
        return np.asarray(prompt, np.float32), path
    array = np.asarray(value, np.float32)
    if array.shape != (prompt_length, hidden_dim):
        raise ValueError(
            f"{label}: a prompt array must have shape [prompt_length, "
            f"hidden_dim] = [{prompt_length}, {hidden_dim}]; got {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{label}: the prompt array has NaN or infinite values."
        )
    return array, "<array>"
