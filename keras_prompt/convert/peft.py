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

Two task types are prompts keras-prompt runs, told apart by the backbone:

- `SEQ_2_SEQ_LM` (T5, `PromptedT5Seq2SeqLM`): PEFT defaults
  `num_transformer_submodules` to 2 and allocates `2 * N` rows, but for
  PROMPT_TUNING its seq2seq forward and generate only prepend rows `[:N]` to
  the *encoder* input; rows `[N:]` are never read. `export_peft` therefore
  writes our prompt as rows `[:N]` and zeros as rows `[N:]`, and
  `import_peft` reads rows `[:N]`. The decoder sees no prompt positions, as
  in ours.
- `CAUSAL_LM` (GPT-2, Llama, Gemma, Mistral, Qwen; `PromptedCausalLM`):
  `num_transformer_submodules` is 1 and the `N` rows go before the whole
  embedded input, start token included, with positions running over prompt
  + input: `PromptedCausalLM`'s placement. With transformers 5 the prompt
  enters Gemma unscaled (the `sqrt(hidden)` factor is inside Gemma's token
  embedding), which is the convention of our prompt files. transformers < 5
  scaled Gemma's `inputs_embeds`, prompt included, so a Gemma adapter
  trained there holds `effective prompt / sqrt(hidden)`: convert it with
  `gemma_scaled_prompt=True`.

These are the semantics of PEFT 0.21 with transformers 5 (checked against
its source and reference outputs).

`export_peft` also stores the prompt file's own metadata (task, labels,
initializer, ...) as an extra safetensors metadata entry, which PEFT ignores,
so `import_peft(export_peft(x))` restores the prompt bit for bit and the
metadata too.
"""

import collections
import json
import math
import os

import keras_hub
import numpy as np
import safetensors
import safetensors.numpy

from keras_prompt.models.causal_lm_family import CausalLMFamily
from keras_prompt.models.causal_lm_family import supported_families
from keras_prompt.prompts.prompt_file import PromptFileError
from keras_prompt.prompts.prompt_file import backbone_fingerprint
from keras_prompt.prompts.prompt_file import check_prompt_metadata
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.prompts.prompt_file import save_prompt_file
from keras_prompt.prompts.prompt_file import write_file_atomically

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_TENSOR_NAME = "prompt_embeddings"
SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"
CAUSAL_LM = "CAUSAL_LM"
TASK_TYPES = (SEQ_2_SEQ_LM, CAUSAL_LM)
# Extra safetensors metadata entry carrying our prompt-file metadata.
_METADATA_KEY = "keras_prompt.metadata"
# Extra safetensors metadata entry: "true" when `export_peft` wrote
# `prompt / sqrt(hidden)` for transformers < 5 Gemma, so that importing such
# an adapter without the matching option is refused instead of scaling the
# prompt wrongly.
_GEMMA_SCALED_KEY = "keras_prompt.gemma_scaled_prompt"
# The sequence lengths each kind of prompted model records in its prompt
# files (`SEQUENCE_LENGTH_KEYS`), which tell a file's task type when no
# backbone is given.
_RECORDED_LENGTH_KEYS = {
    SEQ_2_SEQ_LM: ("encoder_sequence_length", "decoder_sequence_length"),
    CAUSAL_LM: ("sequence_length",),
}
# Recomputed on import, never carried over from an exported file.
_DERIVED_KEYS = (
    "format",
    "format_version",
    "library_version",
    "prompt_length",
    "hidden_dim",
    "backbone_fingerprint",
)

# What the conversion needs to know of a backbone: the PEFT task type of its
# prompts, the model fields PEFT records, the class name it is known by
# (the `CausalLMFamily` name for decoder-only ones) and its hidden size.
_Target = collections.namedtuple(
    "_Target",
    ["task_type", "num_layers", "num_attention_heads", "family", "hidden_dim"],
)


def _target(backbone):
    """The `_Target` of a T5 or supported decoder-only backbone; raises
    `TypeError` naming the class otherwise."""
    if isinstance(backbone, keras_hub.models.T5Backbone):
        return _Target(
            SEQ_2_SEQ_LM,
            int(backbone.num_layers),
            int(backbone.num_heads),
            "T5Backbone",
            int(backbone.hidden_dim),
        )
    try:
        family = CausalLMFamily(backbone)
    except TypeError as error:
        raise TypeError(
            f"backbone is a {type(backbone).__name__}; PEFT prompts convert "
            "for a keras_hub.models.T5Backbone (SEQ_2_SEQ_LM adapters) or a "
            f"decoder-only backbone of {supported_families()} (CAUSAL_LM "
            "adapters). Pass the backbone of the prompted model."
        ) from error
    # PEFT records the model config's `num_attention_heads`: the query heads
    # (KerasHub's `num_query_heads` for grouped-query families).
    heads = getattr(backbone, "num_query_heads", None) or backbone.num_heads
    return _Target(
        CAUSAL_LM,
        family.num_layers,
        int(heads),
        family.family,
        int(backbone.hidden_dim),
    )


def _gemma_prompt_scale(gemma_scaled_prompt, target, caller):
    """`sqrt(hidden)` as float32 when `gemma_scaled_prompt` asks for it,
    `None` when not; raises `ValueError` when the option does not apply."""
    if not isinstance(gemma_scaled_prompt, bool):
        raise ValueError(
            f"{caller}: gemma_scaled_prompt must be True or False; got "
            f"{gemma_scaled_prompt!r}."
        )
    if not gemma_scaled_prompt:
        return None
    if target is None:
        raise ValueError(
            f"{caller}: gemma_scaled_prompt=True needs backbone= (the "
            "GemmaBackbone the prompt was trained on), which shows that the "
            "prompt is a Gemma prompt and gives the hidden size. Pass it."
        )
    if target.family != "GemmaBackbone":
        raise ValueError(
            f"{caller}: gemma_scaled_prompt=True is for Gemma adapters of "
            "Hugging Face transformers < 5, which scaled Gemma's "
            "inputs_embeds, prompt included, by sqrt(hidden); the backbone "
            f"is a {target.family}, whose prompt no transformers version "
            "scales. Leave gemma_scaled_prompt out."
        )
    # transformers < 5 multiplied by `hidden_size ** 0.5` in the model's
    # dtype; float32 here (a bfloat16 model rounded the factor to bfloat16,
    # a difference within bfloat16's own precision).
    return np.float32(math.sqrt(target.hidden_dim))


def _adapter_config(
    *,
    task_type,
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
        "task_type": task_type,
        "token_dim": token_dim,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }


def _recorded_task_type(metadata):
    """The task type the sequence lengths in a prompt file's metadata imply,
    with the key that implies it; `(None, None)` when it records none."""
    for task_type, keys in _RECORDED_LENGTH_KEYS.items():
        for key in keys:
            if metadata.get(key) is not None:
                return task_type, key
    return None, None


def _export_task_type(prompt_file, metadata, target, task_type):
    """The task type to export: the backbone's, else `task_type`, else the
    one the file's recorded sequence lengths imply, else SEQ_2_SEQ_LM (T5
    prompt files written before causal LMs were supported record none)."""
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(
            f"task_type must be one of {list(TASK_TYPES)} (or None to take "
            f"it from the backbone or the prompt file); got {task_type!r}."
        )
    if target is not None:
        if task_type is not None and task_type != target.task_type:
            raise ValueError(
                f"task_type={task_type!r} contradicts the backbone, a "
                f"{target.family}, whose prompts are {target.task_type!r} "
                "adapters. Leave task_type out."
            )
        return target.task_type
    recorded, key = _recorded_task_type(metadata)
    if task_type is not None:
        if recorded is not None and recorded != task_type:
            raise PromptFileError(
                f"{prompt_file}: the file records '{key}' (a "
                f"{recorded} prompt's sequence length), but task_type="
                f"{task_type!r} was given. Leave task_type out, or pass the "
                "backbone the prompt was trained on to settle it."
            )
        return task_type
    return recorded or SEQ_2_SEQ_LM


def _export_submodules(task_type, num_transformer_submodules):
    if num_transformer_submodules is None:  # PEFT's defaults.
        return 2 if task_type == SEQ_2_SEQ_LM else 1
    if num_transformer_submodules not in (1, 2):
        raise ValueError(
            "num_transformer_submodules must be 1 or 2; got "
            f"{num_transformer_submodules!r}."
        )
    if task_type == CAUSAL_LM and num_transformer_submodules != 1:
        raise ValueError(
            f"num_transformer_submodules={num_transformer_submodules!r} is "
            "for SEQ_2_SEQ_LM adapters; a CAUSAL_LM adapter has one prompt "
            "(PEFT's causal forward would prepend all 2N rows, with an "
            "attention mask for N). Leave num_transformer_submodules out, or "
            "pass 1."
        )
    return num_transformer_submodules


def export_peft(
    prompt_file,
    out_dir,
    *,
    backbone=None,
    task_type=None,
    base_model_name_or_path=None,
    num_transformer_submodules=None,
    gemma_scaled_prompt=False,
):
    """Writes a prompt file as a PEFT prompt-tuning adapter directory.

    The result loads with `peft.PeftModel.from_pretrained(hf_model, out_dir)`
    on the Hugging Face model the prompt was trained on, and behaves like
    our prompted model with the same prompt: a `SEQ_2_SEQ_LM` adapter for a
    T5 prompt (`PromptedT5Seq2SeqLM`), a `CAUSAL_LM` adapter for a
    decoder-only one (`PromptedCausalLM`: GPT-2, Llama, Gemma, Mistral,
    Qwen).

    The task type comes from `backbone` when given; else from `task_type`;
    else from the sequence lengths the prompt file records
    (`sequence_length` is written by `PromptedCausalLM.save_prompt`,
    `encoder_sequence_length` / `decoder_sequence_length` by
    `PromptedT5Seq2SeqLM`'s); a file that records none is taken as a T5
    prompt, so a causal prompt saved without a preprocessor needs `backbone`
    or `task_type="CAUSAL_LM"`.

    Args:
        prompt_file: path of a keras-prompt prompt file (`.safetensors`).
        out_dir: adapter directory to write (created if needed);
            `adapter_config.json` and `adapter_model.safetensors` in it are
            replaced.
        backbone: optional backbone the prompt was trained on (a
            `keras_hub.models.T5Backbone` or a decoder-only backbone that
            `PromptedCausalLM` runs). When given, its fingerprint must match
            the prompt file's, it sets the task type, and `num_layers` /
            `num_attention_heads` are filled in (otherwise they are written
            as `null` and PEFT fills them from the model config at load
            time).
        task_type: optional `"SEQ_2_SEQ_LM"` or `"CAUSAL_LM"` when no
            backbone is given; it must agree with the backbone and with the
            file's recorded sequence lengths.
        base_model_name_or_path: written to `adapter_config.json` (the Hub id
            or path of the Hugging Face model, used by `AutoPeftModel...`);
            defaults to the prompt file's `base_model_name_or_path`
            metadata, if any.
        num_transformer_submodules: for `SEQ_2_SEQ_LM`, 2 (PEFT's default:
            `2N` rows, the second `N` unused and written as zeros) or 1 (`N`
            rows); for `CAUSAL_LM` only 1. `None` (the default) gives PEFT's
            default of the task type.
        gemma_scaled_prompt: `True` to write an adapter for Gemma with
            Hugging Face transformers < 5, which multiplies the prompt by
            `sqrt(hidden_dim)` (it scaled `inputs_embeds`): the rows are
            then `prompt / sqrt(hidden_dim)` so that the model sees our
            prompt. Needs `backbone`, a `GemmaBackbone`. The default
            (`False`) writes our prompt as it is, which is what transformers
            5 needs for every family, Gemma included.

    Returns:
        `out_dir`.

    Raises:
        PromptFileError: the prompt file is unreadable, its fingerprint or
            hidden size does not match `backbone`, or its recorded sequence
            lengths contradict `task_type`.
        ValueError: `task_type` contradicts `backbone`,
            `num_transformer_submodules` does not fit the task type, or
            `gemma_scaled_prompt=True` without a Gemma backbone.

    Example:
    ```python
    from keras_prompt.convert import export_peft

    export_peft("rte.safetensors", "rte_peft_adapter",
                base_model_name_or_path="google/t5-base-lm-adapt")
    # A PromptedCausalLM prompt: the backbone makes it a CAUSAL_LM adapter.
    export_peft("sst2.safetensors", "sst2_peft_adapter",
                backbone=model.backbone, base_model_name_or_path="gpt2")
    # In a PyTorch environment:
    #   model = PeftModel.from_pretrained(
    #       AutoModelForCausalLM.from_pretrained("gpt2"), "sst2_peft_adapter")
    ```
    """
    target = _target(backbone) if backbone is not None else None
    scale = _gemma_prompt_scale(gemma_scaled_prompt, target, "export_peft")
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
        num_layers = target.num_layers
        num_attention_heads = target.num_attention_heads
    task_type = _export_task_type(prompt_file, metadata, target, task_type)
    submodules = _export_submodules(task_type, num_transformer_submodules)
    if base_model_name_or_path is None:
        base_model_name_or_path = metadata.get("base_model_name_or_path")

    rows = np.zeros((submodules * num_virtual_tokens, token_dim), "float32")
    rows[:num_virtual_tokens] = prompt if scale is None else prompt / scale
    carried = {k: v for k, v in metadata.items() if k not in _DERIVED_KEYS}
    file_metadata = {
        "format": "pt",  # What PEFT writes; transformers checks it.
        _METADATA_KEY: json.dumps(carried, sort_keys=True),
    }
    if scale is not None:
        file_metadata[_GEMMA_SCALED_KEY] = "true"
    weights = safetensors.numpy.save(
        {PEFT_TENSOR_NAME: rows}, metadata=file_metadata
    )
    config = _adapter_config(
        task_type=task_type,
        num_virtual_tokens=int(num_virtual_tokens),
        token_dim=int(token_dim),
        num_transformer_submodules=submodules,
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


def _check_task_type(path, task_type, target):
    """Raises `PromptFileError` unless an adapter's `task_type` is one the
    backbone's prompted model runs (`None`, PEFT's default, is read as the
    backbone's)."""
    if task_type is None or task_type == target.task_type:
        return
    if target.task_type == SEQ_2_SEQ_LM:
        fix = (
            "A CAUSAL_LM adapter belongs to a decoder-only model: import it "
            "with that model's KerasHub backbone (e.g. `keras_hub.models."
            "CausalLM.from_preset(hf_dir).backbone`) and use it in "
            "`PromptedCausalLM`."
            if task_type == CAUSAL_LM
            else "Use an adapter trained with "
            "`PromptTuningConfig(task_type='SEQ_2_SEQ_LM')`."
        )
        raise PromptFileError(
            f"'{path}': task_type is {task_type!r}; a T5 prompt needs "
            f"'SEQ_2_SEQ_LM'. {fix}"
        )
    if task_type == SEQ_2_SEQ_LM:
        fix = (
            "A SEQ_2_SEQ_LM adapter is a T5 encoder prompt: import it with "
            "the T5Backbone it was trained on (`keras_prompt.convert."
            "load_hf_t5`) and use it in `PromptedT5Seq2SeqLM`."
        )
    else:
        # SEQ_CLS, TOKEN_CLS, QUESTION_ANS also train a head, which a
        # prompt file cannot hold; FEATURE_EXTRACTION has no LM head.
        fix = (
            "Only CAUSAL_LM prompts steer a causal LM's own head: use an "
            "adapter trained with `PromptTuningConfig(task_type='CAUSAL_LM')`."
        )
    raise PromptFileError(
        f"'{path}': task_type is {task_type!r}; a prompt for the "
        f"{target.family} (a decoder-only model, `PromptedCausalLM`) needs "
        f"'CAUSAL_LM'. {fix}"
    )


def _read_adapter_config(adapter_dir, target):
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
    _check_task_type(path, task_type, target)
    for key in ("num_virtual_tokens", "token_dim"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PromptFileError(
                f"'{path}': {key} must be a positive integer; got {value!r}."
            )
    submodules = config.get("num_transformer_submodules")
    if submodules is None:  # PEFT's default.
        submodules = 2 if task_type == SEQ_2_SEQ_LM else 1
    if submodules not in (1, 2):
        raise PromptFileError(
            f"'{path}': num_transformer_submodules must be 1 or 2; got "
            f"{submodules!r}."
        )
    if target.task_type == CAUSAL_LM and submodules != 1:
        # PEFT's causal forward would prepend all `submodules * N` rows with
        # an attention mask for `N`; no PEFT default writes that, so the
        # adapter is not what it claims.
        raise PromptFileError(
            f"'{path}': num_transformer_submodules is {submodules!r}; a "
            "CAUSAL_LM adapter has exactly one prompt (1, PEFT's default "
            "for CAUSAL_LM). Save the adapter again with "
            "`PromptTuningConfig(task_type='CAUSAL_LM')` and "
            "num_transformer_submodules left unset."
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


def _check_gemma_convention(weights_path, file_metadata, gemma_scaled_prompt):
    """Refuses to import an adapter `export_peft` wrote with the other
    `gemma_scaled_prompt`, which would scale the prompt by `sqrt(hidden)`
    too much or too little. Foreign adapters record nothing: the caller
    knows how they were trained."""
    ours = (_METADATA_KEY, _GEMMA_SCALED_KEY)
    if not any(key in file_metadata for key in ours):
        return
    recorded = file_metadata.get(_GEMMA_SCALED_KEY) == "true"
    if recorded != gemma_scaled_prompt:
        rows = "prompt / sqrt(hidden_dim)" if recorded else "the prompt itself"
        raise PromptFileError(
            f"'{weights_path}' was written by `export_peft(..., "
            f"gemma_scaled_prompt={recorded})`, so its rows are {rows}, but "
            f"import_peft got gemma_scaled_prompt={gemma_scaled_prompt}. "
            f"Import it with gemma_scaled_prompt={recorded} to get the "
            "prompt back."
        )


def import_peft(
    adapter_dir, output_path, *, backbone, task=None, gemma_scaled_prompt=False
):
    """Converts a PEFT prompt-tuning adapter into a keras-prompt prompt file.

    A `SEQ_2_SEQ_LM` adapter converts for a `keras_hub.models.T5Backbone`
    (`PromptedT5Seq2SeqLM`), a `CAUSAL_LM` one for a decoder-only backbone
    that `PromptedCausalLM` runs (GPT-2, Llama / Llama 3, Gemma, Mistral,
    Qwen); an adapter without `task_type` is read as the backbone's.

    Args:
        adapter_dir: PEFT adapter directory (`adapter_config.json` +
            `adapter_model.safetensors`) trained on the Hugging Face model
            that `backbone` was converted from (`load_hf_t5` for T5,
            `keras_hub.models.CausalLM.from_preset(hf_dir)` for the
            decoder-only families).
        output_path: prompt file to write (`.safetensors`).
        backbone: the backbone the prompt is for; the file is bound to its
            fingerprint.
        task: optional task name for the prompt's metadata (default: the
            task recorded by `export_peft`, if any).
        gemma_scaled_prompt: `True` for a Gemma adapter trained with Hugging
            Face transformers < 5, which multiplied the prompt by
            `sqrt(hidden_dim)` (it scaled `inputs_embeds`); the prompt file
            then holds `rows * sqrt(hidden_dim)`, the prompt that model saw.
            Only for a `GemmaBackbone`. The default (`False`) takes the rows
            as they are: transformers 5's convention, and every other
            family's.

    Returns:
        `output_path`.

    Raises:
        PromptFileError: not a prompt-tuning adapter, a `task_type` the
            backbone's model does not run (a SEQ_2_SEQ_LM adapter for a
            decoder-only backbone or the reverse), a CAUSAL_LM adapter with
            `num_transformer_submodules` other than 1, a tensor whose shape
            disagrees with `adapter_config.json`, a `token_dim` /
            `num_layers` / `num_attention_heads` that differs from the
            backbone's (the message names the field), an adapter written by
            `export_peft` with the other `gemma_scaled_prompt`, or prompt
            metadata stored by `export_peft` that breaks the prompt-file
            rules (see `keras_prompt.prompts.prompt_file.
            check_prompt_metadata`). Nothing is written then.
        TypeError: `backbone` is neither a T5 nor a supported decoder-only
            backbone.
        ValueError: `gemma_scaled_prompt=True` for a backbone other than
            Gemma.

    Example:
    ```python
    from keras_prompt.convert import import_peft, load_hf_t5

    backbone, preprocessor = load_hf_t5("t5-base-lm-adapt")
    import_peft("rte_peft_adapter", "rte.safetensors", backbone=backbone)
    model = PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=20)
    model.load_prompt("rte.safetensors")

    # A CAUSAL_LM adapter trained on Gemma with transformers 4.x:
    task = keras_hub.models.CausalLM.from_preset("hf_gemma_dir")
    import_peft("gemma_adapter", "gemma.safetensors", backbone=task.backbone,
                gemma_scaled_prompt=True)
    model = PromptedCausalLM(task.backbone, task.preprocessor,
                             prompt_length=20)
    model.load_prompt("gemma.safetensors")
    ```
    """
    target = _target(backbone)
    scale = _gemma_prompt_scale(gemma_scaled_prompt, target, "import_peft")
    adapter_dir = os.fspath(adapter_dir)
    if not os.path.isdir(adapter_dir):
        raise PromptFileError(f"'{adapter_dir}' is not a directory.")
    config_path, config = _read_adapter_config(adapter_dir, target)
    weights_path, tensor, file_metadata = _read_adapter_weights(adapter_dir)
    metadata = _read_carried_metadata(weights_path, file_metadata)
    _check_gemma_convention(weights_path, file_metadata, gemma_scaled_prompt)

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
            "trained on a different model. Import it with the backbone of "
            "the model it was trained on."
        )
    for key, ours in (
        ("num_layers", target.num_layers),
        ("num_attention_heads", target.num_attention_heads),
    ):
        theirs = config.get(key)
        if theirs is not None and theirs != ours:
            raise PromptFileError(
                f"'{config_path}': {key} {theirs} does not match the "
                f"backbone's {ours}; the adapter was trained on a different "
                "model. Import it with the backbone of the model it was "
                "trained on."
            )
    if not np.issubdtype(tensor.dtype, np.floating) and str(tensor.dtype) != "bfloat16":
        raise PromptFileError(
            f"'{weights_path}': {PEFT_TENSOR_NAME} has dtype {tensor.dtype}; "
            "expected a float tensor."
        )
    # The first N rows: all of a CAUSAL_LM adapter's; the encoder rows of a
    # SEQ_2_SEQ_LM one (PEFT never reads rows [N:] for PROMPT_TUNING).
    prompt = np.ascontiguousarray(tensor[:num_virtual_tokens].astype("float32"))
    if scale is not None:
        prompt = prompt * scale
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
