"""Prompt files: one soft prompt in a `.safetensors` file with its metadata.

A prompt only means something on the backbone it was trained on, so every
file records a fingerprint of that backbone (its token embedding matrix and
architecture) and refuses to load anywhere else. The format is plain
safetensors: tensor `prompt` (`float32[prompt_length, hidden_dim]`) plus
string metadata. Nothing is ever unpickled.
"""

import hashlib
import json
import numbers
import os
import re

import numpy as np
import safetensors
import safetensors.numpy

from keras_prompt.utils.atomic_file import atomic_file
from keras_prompt.version import __version__

FORMAT_NAME = "keras_prompt.prompt"
FORMAT_VERSION = "1"
PROMPT_TENSOR_NAME = "prompt"
# Metadata values that are stored JSON-encoded (safetensors metadata is
# `str -> str`).
_JSON_KEYS = ("labels",)
# Integer metadata keys (stored as decimal text) and the smallest value each
# may hold. The sequence lengths were added after release 0.1.0: they are
# optional, so files written by 0.1.0 still load. So is
# `init_training_steps` (the steps of the prompt file a run started from).
_INT_KEY_MINIMUMS = {
    "prompt_length": 1,
    "hidden_dim": 1,
    "training_steps": 0,
    "encoder_sequence_length": 1,
    "decoder_sequence_length": 1,
    "sequence_length": 1,
    "max_input_length": 1,
    "init_training_steps": 0,
}
# Plain decimal text only: `int()` would also take "+4", " 4", "4_000" and
# non-ASCII digits, none of which a writer of ours produces.
_DECIMAL_INTEGER = re.compile(r"-?[0-9]+")
_ARCHITECTURE_KEYS = (
    "vocabulary_size",
    "hidden_dim",
    "intermediate_dim",
    "num_layers",
    "num_heads",
    "key_value_dim",
    "activation",
    "use_gated_activation",
    "layer_norm_epsilon",
    "tie_embedding_weights",
)
# Decoder-only families name their architecture with keys T5 lacks; they
# count where a backbone has them (a T5 fingerprint stays as it was).
_DECODER_ONLY_ARCHITECTURE_KEYS = (
    "num_query_heads",
    "num_key_value_heads",
    "head_dim",
    "max_sequence_length",
    "rope_max_wavelength",
    "rope_scaling_factor",
    "tie_word_embeddings",
    "final_logit_soft_cap",
    "attention_logit_soft_cap",
    "sliding_window_size",
)


# The prompt file a training run writes into its output directory.
PROMPT_FILE_NAME = "prompt.safetensors"


class PromptFileError(ValueError):
    """A prompt file is unreadable, malformed, or meant for another backbone."""


def prompt_file_path(path):
    """`path`, or `path/prompt.safetensors` when `path` is a training output
    directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.join(path, PROMPT_FILE_NAME)
    return path


def backbone_fingerprint(backbone):
    """SHA-256 of a backbone's token embedding matrix and architecture.

    Two backbones share a fingerprint only when they have the same
    architecture and bit-identical token embeddings, which in practice means
    the same pretrained checkpoint.

    Args:
        backbone: a KerasHub backbone (`T5Backbone`, or a decoder-only one
            such as `GPT2Backbone`, `LlamaBackbone`, `GemmaBackbone`).

    Returns:
        A 64-character hexadecimal string.

    Example:
    ```python
    fingerprint = keras_prompt.prompts.backbone_fingerprint(model.backbone)
    ```
    """
    import keras_hub

    config = backbone.get_config()
    architecture = {key: config.get(key) for key in _ARCHITECTURE_KEYS}
    for key in _DECODER_ONLY_ARCHITECTURE_KEYS:
        if key in config:
            architecture[key] = config[key]
    if not isinstance(backbone, keras_hub.models.T5Backbone):
        architecture["family"] = type(backbone).__name__
    digest = hashlib.sha256()
    digest.update(json.dumps(architecture, sort_keys=True).encode("utf-8"))
    embeddings = np.asarray(
        backbone.token_embedding.embeddings.numpy(), dtype="<f4"
    )
    digest.update(np.ascontiguousarray(embeddings).tobytes())
    return digest.hexdigest()


def _encode_metadata(metadata):
    encoded = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if key in _JSON_KEYS or isinstance(value, (list, tuple, dict)):
            encoded[key] = json.dumps(list(value) if key in _JSON_KEYS else value)
        else:
            encoded[key] = str(value)
    return encoded


def _json_text(value):
    """`value` as JSON text, so that `5`, `"5"` and `[5]` read differently
    in an error message."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def check_prompt_metadata(metadata, source, fix):
    """Raises `PromptFileError` unless a prompt's decoded metadata is well
    formed.

    These are the rules for every way metadata enters keras-prompt (prompt
    files, PEFT adapters written by `export_peft`): `labels` is a list (or
    tuple) of strings, and each integer key (`prompt_length`, `hidden_dim`,
    `training_steps`, `encoder_sequence_length`, `decoder_sequence_length`,
    `sequence_length`, `max_input_length`, `init_training_steps`) is an integer no smaller than
    its minimum. Absent keys, and keys whose value is `None` (which
    `save_prompt_file` does not record), are fine; other keys are
    free-form.

    Args:
        metadata: dict of decoded metadata (labels as a list, integers as
            `int`).
        source: how errors name where the metadata came from, e.g.
            `"'rte.safetensors'"`.
        fix: the sentence that ends each error, saying how to repair that
            source.

    Example:
    ```python
    check_prompt_metadata(
        {"labels": ["yes", "no"], "training_steps": 300},
        source="'rte.safetensors'",
        fix="Save the prompt again.",
    )
    ```
    """
    labels = metadata.get("labels")
    if labels is not None and not (
        # A tuple is what Python callers may pass; the file stores a list.
        isinstance(labels, (list, tuple))
        and all(isinstance(label, str) for label in labels)
    ):
        raise PromptFileError(
            f"{source}: metadata 'labels' is {_json_text(labels)}; it must "
            f'be a JSON list of strings such as ["yes", "no"]. {fix}'
        )
    for key, minimum in _INT_KEY_MINIMUMS.items():
        value = metadata.get(key)
        if value is None:
            continue
        # `bool` is an `int` subclass, but `true` is no step count.
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < minimum
        ):
            raise PromptFileError(
                f"{source}: metadata '{key}' is {_json_text(value)}; it must "
                f"be an integer >= {minimum}. {fix}"
            )


def _decode_metadata(raw, source):
    """Decodes a prompt file's `str -> str` metadata and checks it.

    Labels are stored as JSON and integers as decimal text. A value that does
    not decode stays text, which `check_prompt_metadata` then refuses,
    quoting the stored value.
    """
    metadata = dict(raw)
    for key in _JSON_KEYS:
        if key in metadata:
            try:
                metadata[key] = json.loads(metadata[key])
            except ValueError:
                pass  # Not JSON: refused below with the stored text.
    for key in _INT_KEY_MINIMUMS:
        if key in metadata and _DECIMAL_INTEGER.fullmatch(metadata[key]):
            metadata[key] = int(metadata[key])
    check_prompt_metadata(
        metadata,
        source,
        fix="Save the prompt again with `keras_prompt.prompts."
        "save_prompt_file` and a corrected value.",
    )
    return metadata


def write_file_atomically(path, data):
    """Writes `data` (bytes) to `path` so that readers see either the old
    file or the complete new one, never a partial write.

    The file gets the permissions the process umask gives any new file
    (`0o644` under umask 022); see `keras_prompt.utils.atomic_file`.

    Args:
        path: destination file path.
        data: the bytes to write.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    with atomic_file(path) as temp_path:
        with open(temp_path, "wb") as file:
            file.write(data)
    return path


def save_prompt_file(path, prompt, metadata):
    """Writes a soft prompt and its metadata to a `.safetensors` file.

    The write is atomic: a crash part way leaves any previous file at `path`
    intact.

    Args:
        path: destination file path, conventionally ending in `.safetensors`.
        prompt: float array of shape `[prompt_length, hidden_dim]`.
        metadata: dict with at least `backbone_fingerprint`; optional `task`,
            `labels` (list of strings), `initializer`, `training_steps` and
            any other string-valued keys.

    Returns:
        The path written.

    Example:
    ```python
    save_prompt_file(
        "rte.safetensors",
        np.zeros((20, 512), "float32"),
        {"backbone_fingerprint": backbone_fingerprint(backbone), "task": "rte"},
    )
    ```
    """
    prompt = np.asarray(prompt)
    if prompt.ndim != 2:
        raise PromptFileError(
            f"A prompt must have shape [prompt_length, hidden_dim]; got shape "
            f"{prompt.shape}."
        )
    if not np.all(np.isfinite(prompt)):
        raise PromptFileError(
            "Refusing to save a prompt with NaN or infinite values: training "
            "diverged. Lower the learning rate or restore an earlier prompt."
        )
    if not metadata.get("backbone_fingerprint"):
        raise PromptFileError(
            "Prompt metadata needs `backbone_fingerprint` (see "
            "`keras_prompt.prompts.backbone_fingerprint(backbone)`)."
        )
    full_metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        **metadata,
        "prompt_length": prompt.shape[0],
        "hidden_dim": prompt.shape[1],
    }
    check_prompt_metadata(
        full_metadata,
        f"'{os.fspath(path)}'",
        fix="Nothing was written; pass a corrected value.",
    )
    data = safetensors.numpy.save(
        {PROMPT_TENSOR_NAME: np.ascontiguousarray(prompt, dtype="float32")},
        metadata=_encode_metadata(full_metadata),
    )
    return write_file_atomically(path, data)


def _check_prompt_header(path, raw_metadata, file):
    """Checks a prompt file's header (metadata, tensor names, the prompt's
    dtype and shape) and returns the decoded metadata.

    Reads no tensor data, so a file with a large stray tensor is refused
    without loading it.
    """
    if raw_metadata.get("format") != FORMAT_NAME:
        raise PromptFileError(
            f"'{path}' is a safetensors file but not a keras-prompt prompt "
            f"(metadata format={raw_metadata.get('format')!r}, expected "
            f"{FORMAT_NAME!r}). To use a Hugging Face PEFT adapter, convert it "
            "with `keras_prompt.convert.import_peft`."
        )
    if raw_metadata.get("format_version") != FORMAT_VERSION:
        raise PromptFileError(
            f"'{path}' has prompt format version "
            f"{raw_metadata.get('format_version')!r}; this keras-prompt reads "
            f"version {FORMAT_VERSION}. Upgrade keras-prompt."
        )
    tensor_names = list(file.keys())
    if PROMPT_TENSOR_NAME not in tensor_names:
        raise PromptFileError(
            f"'{path}' has no tensor named '{PROMPT_TENSOR_NAME}' "
            f"(found {tensor_names})."
        )
    extra_names = [name for name in tensor_names if name != PROMPT_TENSOR_NAME]
    if extra_names:
        extras = []
        for name in extra_names:
            header = file.get_slice(name)
            extras.append(
                f"'{name}' ({header.get_dtype()} {header.get_shape()})"
            )
        raise PromptFileError(
            f"'{path}' holds tensors besides '{PROMPT_TENSOR_NAME}': "
            f"{', '.join(extras)}. A prompt file holds exactly one tensor, "
            f"'{PROMPT_TENSOR_NAME}': save the prompt alone with "
            "`keras_prompt.prompts.save_prompt_file` and keep other weights "
            "in a separate file."
        )
    prompt_header = file.get_slice(PROMPT_TENSOR_NAME)
    dtype = prompt_header.get_dtype()
    shape = tuple(prompt_header.get_shape())
    if dtype != "F32" or len(shape) != 2:
        raise PromptFileError(
            f"'{path}': tensor '{PROMPT_TENSOR_NAME}' is {dtype} "
            f"{list(shape)}; a prompt must be F32 (float32) [prompt_length, "
            "hidden_dim]. Save it with `keras_prompt.prompts.save_prompt_file`"
            ", which writes that."
        )
    metadata = _decode_metadata(raw_metadata, source=f"'{path}'")
    recorded = (metadata.get("prompt_length"), metadata.get("hidden_dim"))
    if recorded != shape:
        raise PromptFileError(
            f"'{path}': the prompt tensor has shape {shape} but the "
            f"metadata says {recorded}; the file is corrupt. Save the prompt "
            "again with `keras_prompt.prompts.save_prompt_file`, which records "
            "its shape."
        )
    return metadata


def read_prompt_file(path):
    """Reads and validates a prompt file written by `save_prompt_file`.

    The header (metadata, tensor names, the prompt's dtype and shape) is
    checked before any tensor data is read.

    Args:
        path: path of a `.safetensors` prompt file.

    Returns:
        A `(prompt, metadata)` tuple: a `float32[prompt_length, hidden_dim]`
        array and a dict (integers and label lists decoded; the optional
        `encoder_sequence_length` and `decoder_sequence_length` only when
        the file records them).

    Raises:
        PromptFileError: the file is missing, truncated, not a safetensors
            file, not a keras-prompt prompt, holds tensors besides `prompt`,
            has malformed metadata (`labels` not a list of strings, an
            integer key that is not an integer or below its minimum), or
            holds a malformed prompt.

    Example:
    ```python
    prompt, metadata = read_prompt_file("rte.safetensors")
    print(metadata["task"], prompt.shape)
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PromptFileError(f"No prompt file at '{path}'.")
    try:
        with safetensors.safe_open(path, framework="np") as file:
            metadata = _check_prompt_header(path, file.metadata() or {}, file)
            prompt = file.get_tensor(PROMPT_TENSOR_NAME)
    except PromptFileError:
        raise
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise PromptFileError(
            f"'{path}' is not a readable safetensors file (truncated or "
            f"foreign file?): {error}"
        ) from error
    if not np.all(np.isfinite(prompt)):
        raise PromptFileError(
            f"'{path}': the prompt contains NaN or infinite values."
        )
    return prompt, metadata


def check_prompt_compatible(
    metadata, prompt, *, fingerprint, prompt_length, hidden_dim, source="prompt"
):
    """Raises `PromptFileError` unless a prompt fits a model.

    Args:
        metadata: the prompt's metadata dict (from `read_prompt_file`).
        prompt: the prompt array.
        fingerprint: the target backbone's `backbone_fingerprint`.
        prompt_length: the model's prompt length.
        hidden_dim: the model's hidden size.
        source: how to name the prompt in errors (e.g. its path).

    Example:
    ```python
    check_prompt_compatible(
        metadata, prompt, fingerprint=model.backbone_fingerprint(),
        prompt_length=model.prompt_length, hidden_dim=model.hidden_dim,
    )
    ```
    """
    if prompt.shape[1] != hidden_dim:
        raise PromptFileError(
            f"{source}: hidden size {prompt.shape[1]} does not match the "
            f"backbone's hidden_dim {hidden_dim}; it was trained on a "
            "different backbone."
        )
    if prompt.shape[0] != prompt_length:
        raise PromptFileError(
            f"{source}: prompt length {prompt.shape[0]} does not match the "
            f"model's prompt_length {prompt_length}. Build the model with "
            f"`prompt_length={prompt.shape[0]}`."
        )
    recorded = metadata.get("backbone_fingerprint")
    if recorded != fingerprint:
        raise PromptFileError(
            f"{source}: backbone fingerprint {str(recorded)[:12]}… does not "
            f"match this backbone's {fingerprint[:12]}…: the prompt was "
            "trained on a different backbone (other weights, vocabulary or "
            "architecture) and would produce garbage here."
        )
