"""Prompt files: one soft prompt in a `.safetensors` file with its metadata.

A prompt only means something on the backbone it was trained on, so every
file records a fingerprint of that backbone (its token embedding matrix and
architecture) and refuses to load anywhere else. The format is plain
safetensors: tensor `prompt` (`float32[prompt_length, hidden_dim]`) plus
string metadata. Nothing is ever unpickled.
"""

import hashlib
import json
import os
import tempfile

import numpy as np
import safetensors
import safetensors.numpy

from keras_prompt.version import __version__

FORMAT_NAME = "keras_prompt.prompt"
FORMAT_VERSION = "1"
PROMPT_TENSOR_NAME = "prompt"
# Metadata values that are stored JSON-encoded (safetensors metadata is
# `str -> str`).
_JSON_KEYS = ("labels",)
_INT_KEYS = ("prompt_length", "hidden_dim", "training_steps")
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
    """SHA-256 of a T5 backbone's token embedding matrix and architecture.

    Two backbones share a fingerprint only when they have the same
    architecture and bit-identical token embeddings, which in practice means
    the same pretrained checkpoint.

    Args:
        backbone: a `keras_hub.models.T5Backbone`.

    Returns:
        A 64-character hexadecimal string.

    Example:
    ```python
    fingerprint = keras_prompt.prompts.backbone_fingerprint(model.backbone)
    ```
    """
    config = backbone.get_config()
    architecture = {key: config.get(key) for key in _ARCHITECTURE_KEYS}
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


def _decode_metadata(raw):
    metadata = dict(raw)
    for key in _JSON_KEYS:
        if key in metadata:
            metadata[key] = json.loads(metadata[key])
    for key in _INT_KEYS:
        if key in metadata:
            metadata[key] = int(metadata[key])
    return metadata


def write_file_atomically(path, data):
    """Writes `data` (bytes) to `path` so that readers see either the old
    file or the complete new one, never a partial write."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
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
    data = safetensors.numpy.save(
        {PROMPT_TENSOR_NAME: np.ascontiguousarray(prompt, dtype="float32")},
        metadata=_encode_metadata(full_metadata),
    )
    return write_file_atomically(path, data)


def read_prompt_file(path):
    """Reads and validates a prompt file written by `save_prompt_file`.

    Args:
        path: path of a `.safetensors` prompt file.

    Returns:
        A `(prompt, metadata)` tuple: a `float32[prompt_length, hidden_dim]`
        array and a dict (integers and label lists decoded).

    Raises:
        PromptFileError: the file is missing, truncated, not a safetensors
            file, not a keras-prompt prompt, or holds a malformed prompt.

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
            raw_metadata = file.metadata() or {}
            names = list(file.keys())
            tensors = {name: file.get_tensor(name) for name in names}
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise PromptFileError(
            f"'{path}' is not a readable safetensors file (truncated or "
            f"foreign file?): {error}"
        ) from error
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
    if PROMPT_TENSOR_NAME not in tensors:
        raise PromptFileError(
            f"'{path}' has no tensor named '{PROMPT_TENSOR_NAME}' "
            f"(found {names})."
        )
    try:
        metadata = _decode_metadata(raw_metadata)
    except ValueError as error:
        raise PromptFileError(
            f"'{path}' has malformed metadata: {error}"
        ) from error
    prompt = tensors[PROMPT_TENSOR_NAME]
    if prompt.dtype != np.float32 or prompt.ndim != 2:
        raise PromptFileError(
            f"'{path}': the prompt must be float32 [prompt_length, "
            f"hidden_dim]; got {prompt.dtype} {prompt.shape}."
        )
    recorded = (metadata.get("prompt_length"), metadata.get("hidden_dim"))
    if recorded != prompt.shape:
        raise PromptFileError(
            f"'{path}': the prompt tensor has shape {prompt.shape} but the "
            f"metadata says {recorded}; the file is corrupt."
        )
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
