"""Hugging Face PEFT prompt-tuning adapters <-> keras-prompt prompt files.

A PEFT prompt-tuning adapter (as written by `PeftModel.save_pretrained` for a
`PromptTuningConfig`) is a directory with:

- `adapter_config.json`: the `PromptTuningConfig` fields (`peft_type`
  "PROMPT_TUNING", `task_type`, `num_virtual_tokens`, `token_dim`,
  `num_transformer_submodules`, `num_attention_heads`, `num_layers`,
  `prompt_tuning_init`, `base_model_name_or_path`, `inference_mode`, ...).
- `adapter_model.safetensors`: one tensor `prompt_embeddings` of shape
  `[num_transformer_submodules * num_virtual_tokens, token_dim]` (PEFT's
  `nn.Embedding` weight over all virtual tokens; float32 unless the user cast
  it).

For `task_type="SEQ_2_SEQ_LM"` PEFT defaults `num_transformer_submodules` to
2 and allocates `2 * N` rows, but for PROMPT_TUNING its seq2seq forward and
generate only prepend rows `[:N]` to the *encoder* input; rows `[N:]` are
never read. `export_peft` therefore writes our prompt as rows `[:N]` and
zeros as rows `[N:]`, and `import_peft` reads rows `[:N]`. These are the
semantics of PEFT 0.21 (checked against its source and reference outputs),
which match ours: the decoder sees no prompt positions.

`export_peft` also stores the prompt file's own metadata (task, labels,
initializer, ...) as an extra safetensors metadata entry, which PEFT ignores,
so `import_peft(export_peft(x))` restores the prompt bit for bit and the
metadata too.
"""

import json
import os

import numpy as np
import safetensors
import safetensors.numpy

from keras_prompt.prompts.prompt_file import PromptFileError
from keras_prompt.prompts.prompt_file import backbone_fingerprint
from keras_prompt.prompts.prompt_file import check_prompt_metadata
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.prompts.prompt_file import save_prompt_file
from keras_prompt.prompts.prompt_file import write_file_atomically

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_TENSOR_NAME = "prompt_embeddings"
# Extra safetensors metadata entry carrying our prompt-file metadata.
_METADATA_KEY = "keras_prompt.metadata"
# Recomputed on import, never carried over from an exported file.
_DERIVED_KEYS = (
    "format",
    "format_version",
    "library_version",
    "prompt_length",
    "hidden_dim",
    "backbone_fingerprint",
)


def _adapter_config(
    *,
    num_virtual_tokens,
    token_dim,
    num_transformer_submodules,
    num_attention_heads,
    num_layers,
    base_model_name_or_path,
):
    # The fields of PEFT's `PromptTuningConfig` dataclass (and its bases
    # `PromptLearningConfig`, `PeftConfig`, `PeftConfigMixin`), as
    # `PeftConfig.save_pretrained` writes them. `peft_version` is left out:
    # current PEFT fills it in on load, older PEFT rejects unknown keys.
    return {
        "auto_mapping": None,
        "base_model_name_or_path": base_model_name_or_path,
        "inference_mode": True,  # PeftModel.save_pretrained writes True.
        "modules_to_save": None,
        "num_attention_heads": num_attention_heads,
        "num_layers": num_layers,
        "num_transformer_submodules": num_transformer_submodules,
        "num_virtual_tokens": num_virtual_tokens,
        "peft_type": "PROMPT_TUNING",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "SEQ_2_SEQ_LM",
        "token_dim": token_dim,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }


def export_peft(
    prompt_file,
    out_dir,
    *,
    backbone=None,
    base_model_name_or_path=None,
    num_transformer_submodules=2,
):
    """Writes a prompt file as a PEFT prompt-tuning adapter directory.

    The result loads with `peft.PeftModel.from_pretrained(t5_model, out_dir)`
    on the Hugging Face T5 the prompt was trained on, and behaves like our
    `PromptedT5Seq2SeqLM` with the same prompt.

    Args:
        prompt_file: path of a keras-prompt prompt file (`.safetensors`).
        out_dir: adapter directory to write (created if needed);
            `adapter_config.json` and `adapter_model.safetensors` in it are
            replaced.
        backbone: optional `keras_hub.models.T5Backbone` the prompt was
            trained on. When given, its fingerprint must match the prompt
            file's, and `num_layers` / `num_attention_heads` are filled in
            (otherwise they are written as `null` and PEFT fills them from the
            model config at load time).
        base_model_name_or_path: written to `adapter_config.json` (the Hub id
            or path of the Hugging Face model, used by
            `AutoPeftModelForSeq2SeqLM`); defaults to the prompt file's
            `base_model_name_or_path` metadata, if any.
        num_transformer_submodules: 2 (PEFT's default for SEQ_2_SEQ_LM: `2N`
            rows, the second `N` unused and written as zeros) or 1 (`N` rows).

    Returns:
        `out_dir`.

    Example:
    ```python
    from keras_prompt.convert import export_peft

    export_peft("rte.safetensors", "rte_peft_adapter",
                base_model_name_or_path="google/t5-base-lm-adapt")
    # In a PyTorch environment:
    #   model = PeftModel.from_pretrained(
    #       T5ForConditionalGeneration.from_pretrained("google/t5-base-lm-adapt"),
    #       "rte_peft_adapter")
    ```
    """
    if num_transformer_submodules not in (1, 2):
        raise ValueError(
            "num_transformer_submodules must be 1 or 2; got "
            f"{num_transformer_submodules!r}."
        )
    prompt, metadata = read_prompt_file(prompt_file)
    num_virtual_tokens, token_dim = prompt.shape
    num_layers = num_attention_heads = None
    if backbone is not None:
        fingerprint = backbone_fingerprint(backbone)
        if metadata.get("backbone_fingerprint") != fingerprint:
            raise PromptFileError(
                f"{prompt_file}: backbone fingerprint "
                f"{str(metadata.get('backbone_fingerprint'))[:12]}… does not "
                f"match the given backbone's {fingerprint[:12]}…."
            )
        if backbone.hidden_dim != token_dim:
            raise PromptFileError(
                f"{prompt_file}: hidden size {token_dim} does not match the "
                f"backbone's hidden_dim {backbone.hidden_dim}."
            )
        num_layers = int(backbone.num_layers)
        num_attention_heads = int(backbone.num_heads)
    if base_model_name_or_path is None:
        base_model_name_or_path = metadata.get("base_model_name_or_path")

    rows = np.zeros(
        (num_transformer_submodules * num_virtual_tokens, token_dim), "float32"
    )
    rows[:num_virtual_tokens] = prompt
    carried = {k: v for k, v in metadata.items() if k not in _DERIVED_KEYS}
    weights = safetensors.numpy.save(
        {PEFT_TENSOR_NAME: rows},
        metadata={
            "format": "pt",  # What PEFT writes; transformers checks it.
            _METADATA_KEY: json.dumps(carried, sort_keys=True),
        },
    )
    config = _adapter_config(
        num_virtual_tokens=int(num_virtual_tokens),
        token_dim=int(token_dim),
        num_transformer_submodules=num_transformer_submodules,
        num_attention_heads=num_attention_heads,
        num_layers=num_layers,
        base_model_name_or_path=base_model_name_or_path,
    )
    out_dir = os.fspath(out_dir)
    if os.path.isfile(out_dir):
        raise ValueError(f"'{out_dir}' is a file; export_peft needs a directory.")
    os.makedirs(out_dir, exist_ok=True)
    write_file_atomically(os.path.join(out_dir, ADAPTER_WEIGHTS_NAME), weights)
    write_file_atomically(
        os.path.join(out_dir, ADAPTER_CONFIG_NAME),
        json.dumps(config, indent=2, sort_keys=True).encode("utf-8"),
    )
    return out_dir


def _read_adapter_config(adapter_dir):
    path = os.path.join(adapter_dir, ADAPTER_CONFIG_NAME)
    if not os.path.isfile(path):
        raise PromptFileError(
            f"No '{ADAPTER_CONFIG_NAME}' in '{adapter_dir}': not a PEFT "
            "adapter directory."
        )
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        raise PromptFileError(f"Cannot read '{path}': {error}") from error
    if not isinstance(config, dict):
        raise PromptFileError(f"'{path}' is not a JSON object.")
    peft_type = config.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise PromptFileError(
            f"'{path}': peft_type is {peft_type!r}; only 'PROMPT_TUNING' "
            "adapters are soft prompts that keras-prompt can use (prefix "
            "tuning, P-tuning and LoRA change the model itself)."
        )
    task_type = config.get("task_type")
    if task_type not in (None, "SEQ_2_SEQ_LM"):
        raise PromptFileError(
            f"'{path}': task_type is {task_type!r}; a T5 prompt needs "
            "'SEQ_2_SEQ_LM'."
        )
    for key in ("num_virtual_tokens", "token_dim"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PromptFileError(
                f"'{path}': {key} must be a positive integer; got {value!r}."
            )
    submodules = config.get("num_transformer_submodules")
    if submodules is None:  # PEFT's default.
        submodules = 2 if task_type == "SEQ_2_SEQ_LM" else 1
    if submodules not in (1, 2):
        raise PromptFileError(
            f"'{path}': num_transformer_submodules must be 1 or 2; got "
            f"{submodules!r}."
        )
    config["num_transformer_submodules"] = submodules
    return path, config


def _read_adapter_weights(adapter_dir):
    path = os.path.join(adapter_dir, ADAPTER_WEIGHTS_NAME)
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(adapter_dir, "adapter_model.bin")):
            raise PromptFileError(
                f"'{adapter_dir}' has only 'adapter_model.bin' (a torch "
                "pickle), which keras-prompt does not unpickle. Re-save the "
                "adapter with `save_pretrained(..., safe_serialization=True)`."
            )
        raise PromptFileError(f"No '{ADAPTER_WEIGHTS_NAME}' in '{adapter_dir}'.")
    try:
        with safetensors.safe_open(path, framework="np") as file:
            names = list(file.keys())
            metadata = file.metadata() or {}
            if PEFT_TENSOR_NAME not in names:
                raise PromptFileError(
                    f"'{path}' has no tensor '{PEFT_TENSOR_NAME}' (found "
                    f"{names}); not a PEFT prompt-tuning adapter."
                )
            tensor = file.get_tensor(PEFT_TENSOR_NAME)
    except PromptFileError:
        raise
    except Exception as error:  # safetensors raises several types.
        raise PromptFileError(
            f"'{path}' is not a readable safetensors file: {error}"
        ) from error
    return path, tensor, metadata


def _read_carried_metadata(weights_path, file_metadata):
    """The prompt-file metadata that `export_peft` stored in an adapter,
    minus the keys recomputed on import, checked with the prompt-file rules
    so that the prompt file written from it loads; `{}` when the adapter has
    none (a foreign adapter)."""
    carried = file_metadata.get(_METADATA_KEY)
    if carried is None:
        return {}
    source = f"'{weights_path}' (metadata entry '{_METADATA_KEY}')"
    fix = (
        "Correct the value in that entry, delete the entry to import the "
        "adapter without keras-prompt metadata, or export the adapter again "
        "with `keras_prompt.convert.export_peft`."
    )
    try:
        metadata = json.loads(carried)
    except ValueError as error:
        raise PromptFileError(
            f"{source} is not JSON ({error}): {carried[:80]!r}. {fix}"
        ) from error
    if not isinstance(metadata, dict):
        raise PromptFileError(
            f"{source} is {carried[:80]!r}; it must be a JSON object of "
            f"prompt metadata. {fix}"
        )
    metadata = {k: v for k, v in metadata.items() if k not in _DERIVED_KEYS}
    check_prompt_metadata(metadata, source, fix)
    return metadata


def import_peft(adapter_dir, output_path, *, backbone, task=None):
    """Converts a PEFT prompt-tuning adapter into a keras-prompt prompt file.

    Args:
        adapter_dir: PEFT adapter directory (`adapter_config.json` +
            `adapter_model.safetensors`) trained on the Hugging Face T5 that
            `backbone` was converted from (`load_hf_t5`).
        output_path: prompt file to write (`.safetensors`).
        backbone: the `keras_hub.models.T5Backbone` the prompt is for; the
            file is bound to its fingerprint.
        task: optional task name for the prompt's metadata (default: the
            task recorded by `export_peft`, if any).

    Returns:
        `output_path`.

    Raises:
        PromptFileError: not a prompt-tuning adapter, a tensor whose shape
            disagrees with `adapter_config.json`, a `token_dim` /
            `num_layers` / `num_attention_heads` that differs from the
            backbone's (the message names the field), or prompt metadata
            stored by `export_peft` that breaks the prompt-file rules (see
            `keras_prompt.prompts.prompt_file.check_prompt_metadata`).
            Nothing is written then.

    Example:
    ```python
    from keras_prompt.convert import import_peft, load_hf_t5

    backbone, preprocessor = load_hf_t5("t5-base-lm-adapt")
    import_peft("rte_peft_adapter", "rte.safetensors", backbone=backbone)
    model = PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=20)
    model.load_prompt("rte.safetensors")
    ```
    """
    adapter_dir = os.fspath(adapter_dir)
    if not os.path.isdir(adapter_dir):
        raise PromptFileError(f"'{adapter_dir}' is not a directory.")
    config_path, config = _read_adapter_config(adapter_dir)
    weights_path, tensor, file_metadata = _read_adapter_weights(adapter_dir)
    metadata = _read_carried_metadata(weights_path, file_metadata)

    num_virtual_tokens = config["num_virtual_tokens"]
    token_dim = config["token_dim"]
    submodules = config["num_transformer_submodules"]
    expected = (submodules * num_virtual_tokens, token_dim)
    if tuple(tensor.shape) != expected:
        raise PromptFileError(
            f"'{weights_path}': {PEFT_TENSOR_NAME} has shape "
            f"{list(tensor.shape)}, but {ADAPTER_CONFIG_NAME} implies "
            f"{list(expected)} (num_transformer_submodules={submodules} x "
            f"num_virtual_tokens={num_virtual_tokens}, token_dim={token_dim})."
        )
    if token_dim != backbone.hidden_dim:
        raise PromptFileError(
            f"'{config_path}': token_dim {token_dim} does not match the "
            f"backbone's hidden_dim {backbone.hidden_dim}; the adapter was "
            "trained on a different model."
        )
    for key, ours in (
        ("num_layers", backbone.num_layers),
        ("num_attention_heads", backbone.num_heads),
    ):
        theirs = config.get(key)
        if theirs is not None and theirs != ours:
            raise PromptFileError(
                f"'{config_path}': {key} {theirs} does not match the "
                f"backbone's {ours}; the adapter was trained on a different "
                "model."
            )
    if not np.issubdtype(tensor.dtype, np.floating) and str(tensor.dtype) != "bfloat16":
        raise PromptFileError(
            f"'{weights_path}': {PEFT_TENSOR_NAME} has dtype {tensor.dtype}; "
            "expected a float tensor."
        )
    # Encoder rows only: PEFT never reads rows [N:] for PROMPT_TUNING.
    prompt = np.ascontiguousarray(tensor[:num_virtual_tokens].astype("float32"))
    if not np.all(np.isfinite(prompt)):
        raise PromptFileError(
            f"'{weights_path}': {PEFT_TENSOR_NAME} contains NaN or infinite "
            "values."
        )

    if not metadata:  # A foreign adapter (not written by export_peft).
        metadata["source"] = "peft"
        metadata["initializer"] = "peft:" + str(config.get("prompt_tuning_init"))
    if config.get("base_model_name_or_path"):
        metadata.setdefault(
            "base_model_name_or_path", config["base_model_name_or_path"]
        )
    if task is not None:
        metadata["task"] = task
    metadata["backbone_fingerprint"] = backbone_fingerprint(backbone)
    return save_prompt_file(output_path, prompt, metadata)
