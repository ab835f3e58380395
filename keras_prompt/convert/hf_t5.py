"""Hugging Face T5 checkpoints -> KerasHub `T5Backbone` + preprocessor.

KerasHub 0.32 has no Hugging Face T5 converter (`keras_hub/src/utils/
transformers/` converts T5Gemma, not T5), so this module maps the weights
itself. It reads a *local* checkpoint directory (no network, no torch):

- `config.json` (`model_type` "t5" or "mt5", encoder-decoder),
- `model.safetensors`, or shards listed in `model.safetensors.index.json`,
- `spiece.model` (SentencePiece; the `<extra_id_N>` sentinels are added the
  way seqio and Hugging Face number them, see `hf_t5_tokenizer`).

Both T5 flavours are supported:

| Hugging Face `config.json` | KerasHub `T5Backbone` |
| --- | --- |
| original T5: `feed_forward_proj="relu"`, `tie_word_embeddings=true` | `activation="relu"`, `use_gated_activation=False`, `tie_embedding_weights=True` (the head scales by `d_model**-0.5`, as HF does) |
| T5 1.1 / LM-adapted / Flan: `"gated-gelu"`, untied `lm_head` | `activation=gelu_tanh` (HF `gelu_new`), `use_gated_activation=True`, `tie_embedding_weights=False` |

Weight mapping (HF `nn.Linear` weights are `[out, in]`, Keras kernels
`[in, out]`, so every projection is transposed):

| Hugging Face | KerasHub |
| --- | --- |
| `shared.weight` `[V, D]` | `token_embedding.embeddings` |
| `lm_head.weight` `[V, D]` (untied) | `token_embedding.reverse_embeddings` `[D, V]` |
| `{encoder,decoder}.block.{i}.layer.0.SelfAttention.{q,k,v,o}` | `{stack}[i].self_attention.{query,key,value,output}_projector` |
| `....block.0.layer.0.SelfAttention.relative_attention_bias` `[32, H]` | `{stack}[0].self_attention.relative_attention_bias` |
| `....layer.0.layer_norm` | `{stack}[i].self_attention_layer_norm` |
| `decoder.block.{i}.layer.1.EncDecAttention.*`, `layer.1.layer_norm` | `cross_attention.*`, `cross_attention_layer_norm` |
| `DenseReluDense.wi` (or gated `wi_0`, `wi_1`), `wo` | `input_projector` (`wi_0`: the activated branch), `gate_projector` (`wi_1`: the linear branch), `output_projector` |
| feed-forward `layer_norm` | `{stack}[i].layer_norm` |
| `{encoder,decoder}.final_layer_norm` | `{encoder,decoder}_layer_norm` |

KerasHub's gated layer computes `act(input_projector(x)) *
gate_projector(x)`; HF's `T5DenseGatedActDense` computes `act(wi_0(x)) *
wi_1(x)`, hence the mapping above.
"""

import json
import os
import warnings

import keras
import keras_hub
import numpy as np
from safetensors import safe_open

from keras_prompt.convert.activations import gelu_tanh
from keras_prompt.convert.errors import HFCheckpointError
from keras_prompt.convert.hf_t5_tokenizer import load_hf_t5_sentencepiece

SUPPORTED_MODEL_TYPES = ("t5", "mt5")
# `T5MultiHeadAttention` hard-codes these (keras_hub 0.32).
KERAS_HUB_RELATIVE_ATTENTION_BUCKETS = 32
KERAS_HUB_RELATIVE_ATTENTION_MAX_DISTANCE = 128

_SAFETENSORS_FILE = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_UNSUPPORTED_WEIGHT_FILES = (
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
)
# Hugging Face activation names -> Keras activations.
_ACTIVATIONS = {
    "relu": "relu",
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu": "gelu",  # exact erf GELU in both libraries.
    "silu": "silu",
    "swish": "silu",
}
# Keys that may be present and carry nothing we need.
_IGNORED_KEYS = (
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    # Old checkpoints carry an unused bias on the first cross-attention;
    # Hugging Face ignores it too.
    "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise HFCheckpointError(f"Cannot read '{path}': {error}") from error


def is_hf_t5_checkpoint(path):
    """Whether `path` is a Hugging Face checkpoint directory (not a preset).

    True for a local directory whose `config.json` is a Hugging Face
    `transformers` config (it has a `model_type` field and no KerasHub
    `class_name`/`module`). It does not validate the checkpoint:
    `load_hf_t5` does that, and rejects non-T5 models (e.g.
    `model_type="bert"`) with an error that names the field. Use it to route
    a "preset or checkpoint" argument:

    Args:
        path: any string or path-like (a preset name, a directory, ...).

    Returns:
        bool. Never raises.

    Example:
    ```python
    from keras_prompt.convert import is_hf_t5_checkpoint, load_hf_t5

    if is_hf_t5_checkpoint(preset):
        backbone, preprocessor = load_hf_t5(preset)
    else:
        backbone = keras_hub.models.T5Backbone.from_preset(preset)
    ```
    """
    try:
        path = os.fspath(path)
        config_path = os.path.join(path, "config.json")
        if not os.path.isfile(config_path):
            return False
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
    except Exception:  # noqa: BLE001 - documented to never raise.
        return False
    return (
        isinstance(config, dict)
        and "model_type" in config
        and "class_name" not in config
        and "module" not in config
    )


def _config_int(config, key, default=None):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise HFCheckpointError(
            f"config.json field '{key}' must be a positive integer; got "
            f"{value!r}."
        )
    return value


def _parse_hf_t5_config(config, config_path):
    """Validates an HF T5 config and returns (backbone kwargs, tied flag)."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise HFCheckpointError(
            f"{config_path}: model_type {model_type!r} is not supported; "
            f"only Hugging Face T5 encoder-decoder checkpoints (model_type "
            f"{' or '.join(map(repr, SUPPORTED_MODEL_TYPES))}) convert to a "
            "KerasHub T5Backbone."
        )
    if not config.get("is_encoder_decoder", True):
        raise HFCheckpointError(
            f"{config_path}: is_encoder_decoder is false (an encoder-only or "
            "decoder-only T5); prompt tuning needs the full encoder-decoder "
            "T5 (e.g. T5ForConditionalGeneration)."
        )
    if config.get("is_decoder", False):
        raise HFCheckpointError(
            f"{config_path}: is_decoder is true (a decoder-only stack); "
            "prompt tuning needs the full encoder-decoder T5."
        )
    architectures = config.get("architectures") or []
    if any(arch in ("T5EncoderModel", "MT5EncoderModel") for arch in architectures):
        raise HFCheckpointError(
            f"{config_path}: architectures {architectures} is encoder-only; "
            "prompt tuning needs the full encoder-decoder T5 (e.g. "
            "T5ForConditionalGeneration)."
        )

    vocabulary_size = _config_int(config, "vocab_size")
    hidden_dim = _config_int(config, "d_model")
    key_value_dim = _config_int(config, "d_kv")
    intermediate_dim = _config_int(config, "d_ff")
    num_layers = _config_int(config, "num_layers")
    num_heads = _config_int(config, "num_heads")
    num_decoder_layers = _config_int(config, "num_decoder_layers", num_layers)
    if num_decoder_layers != num_layers:
        raise HFCheckpointError(
            f"{config_path}: num_decoder_layers={num_decoder_layers} differs "
            f"from num_layers={num_layers}; KerasHub's T5Backbone uses one "
            "num_layers for both the encoder and the decoder."
        )
    for key, supported in (
        ("relative_attention_num_buckets", KERAS_HUB_RELATIVE_ATTENTION_BUCKETS),
        ("relative_attention_max_distance", KERAS_HUB_RELATIVE_ATTENTION_MAX_DISTANCE),
    ):
        value = config.get(key, supported)
        if value != supported:
            raise HFCheckpointError(
                f"{config_path}: {key}={value!r}, but KerasHub's T5 attention "
                f"hard-codes {supported}."
            )

    feed_forward_proj = config.get("feed_forward_proj", "relu")
    parts = str(feed_forward_proj).split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise HFCheckpointError(
            f"{config_path}: feed_forward_proj {feed_forward_proj!r} is not a "
            "valid T5 feed-forward type (expected e.g. 'relu' or "
            "'gated-gelu')."
        )
    gated = parts[0] == "gated"
    # Hugging Face's T5Config maps "gated-gelu" to the tanh approximation.
    derived_act = "gelu_new" if feed_forward_proj == "gated-gelu" else parts[-1]
    act_name = config.get("dense_act_fn") or derived_act
    if "is_gated_act" in config and bool(config["is_gated_act"]) != gated:
        raise HFCheckpointError(
            f"{config_path}: is_gated_act={config['is_gated_act']!r} "
            f"contradicts feed_forward_proj={feed_forward_proj!r}."
        )
    if act_name not in _ACTIVATIONS:
        raise HFCheckpointError(
            f"{config_path}: dense_act_fn {act_name!r} (from "
            f"feed_forward_proj={feed_forward_proj!r}) is not supported; "
            f"supported: {sorted(_ACTIVATIONS)}."
        )
    epsilon = config.get("layer_norm_epsilon", 1e-6)
    dropout = config.get("dropout_rate", 0.1)
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool):
        raise HFCheckpointError(
            f"{config_path}: layer_norm_epsilon must be a number; got {epsilon!r}."
        )
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise HFCheckpointError(
            f"{config_path}: dropout_rate must be in [0, 1); got {dropout!r}."
        )
    tied = bool(config.get("tie_word_embeddings", True))
    kwargs = dict(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        key_value_dim=key_value_dim,
        dropout=float(dropout),
        activation=_ACTIVATIONS[act_name],
        use_gated_activation=gated,
        layer_norm_epsilon=float(epsilon),
        tie_embedding_weights=tied,
    )
    return kwargs


def _weight_files(path):
    """Returns {hf_key: safetensors file path} for the checkpoint."""
    index_path = os.path.join(path, _SAFETENSORS_INDEX)
    single_path = os.path.join(path, _SAFETENSORS_FILE)
    if os.path.isfile(index_path):
        index = _read_json(index_path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise HFCheckpointError(
                f"'{index_path}' has no 'weight_map' of weight name -> shard."
            )
        files = {}
        for key, shard in weight_map.items():
            shard_path = os.path.join(path, shard)
            if not os.path.isfile(shard_path):
                raise HFCheckpointError(
                    f"Shard '{shard}' listed in '{index_path}' for weight "
                    f"'{key}' does not exist."
                )
            files[key] = shard_path
        return files
    if os.path.isfile(single_path):
        try:
            with safe_open(single_path, framework="np") as file:
                keys = list(file.keys())
        except Exception as error:  # safetensors raises several types.
            raise HFCheckpointError(
                f"'{single_path}' is not a readable safetensors file: {error}"
            ) from error
        return {key: single_path for key in keys}
    others = [
        name
        for name in _UNSUPPORTED_WEIGHT_FILES
        if os.path.exists(os.path.join(path, name))
    ]
    if others:
        raise HFCheckpointError(
            f"'{path}' has {others[0]} but no '{_SAFETENSORS_FILE}' or "
            f"'{_SAFETENSORS_INDEX}'; only safetensors checkpoints convert "
            "(without torch). Re-save it with safe_serialization=True, or "
            "download the safetensors revision of the model."
        )
    raise HFCheckpointError(
        f"No weights in '{path}': expected '{_SAFETENSORS_FILE}' or "
        f"'{_SAFETENSORS_INDEX}'."
    )


def _weight_plan(kwargs):
    """Lists `(hf_key, hf_shape, keras_path, transpose)` entries.

    `keras_path` (attribute names and list indices from the backbone) is
    resolved later, so a checkpoint is validated before the (large) backbone
    is built. `transpose` marks `nn.Linear` weights (`[out, in]` in HF,
    `[in, out]` in Keras) and the LM head.
    """
    vocab = kwargs["vocabulary_size"]
    dim = kwargs["hidden_dim"]
    inner = kwargs["num_heads"] * kwargs["key_value_dim"]
    ff = kwargs["intermediate_dim"]
    buckets = (KERAS_HUB_RELATIVE_ATTENTION_BUCKETS, kwargs["num_heads"])
    plan = []

    def add(key, shape, keras_path, transpose=False):
        plan.append((key, shape, keras_path, transpose))

    add("shared.weight", (vocab, dim), ("token_embedding", "embeddings"))
    if not kwargs["tie_embedding_weights"]:
        add(
            "lm_head.weight",
            (vocab, dim),
            ("token_embedding", "reverse_embeddings"),
            transpose=True,
        )
    for stack, hf_stack in (
        ("encoder_transformer_layers", "encoder"),
        ("decoder_transformer_layers", "decoder"),
    ):
        is_decoder = hf_stack == "decoder"
        for i in range(kwargs["num_layers"]):
            layer = (stack, i)
            prefix = f"{hf_stack}.block.{i}.layer"
            attention_blocks = [("0", "SelfAttention", "self_attention")]
            if is_decoder:
                attention_blocks.append(
                    ("1", "EncDecAttention", "cross_attention")
                )
            for index, hf_name, keras_name in attention_blocks:
                block = f"{prefix}.{index}.{hf_name}"
                for hf_proj, keras_proj in (
                    ("q", "query_projector"),
                    ("k", "key_projector"),
                    ("v", "value_projector"),
                ):
                    add(
                        f"{block}.{hf_proj}.weight",
                        (inner, dim),
                        layer + (keras_name, keras_proj, "kernel"),
                        transpose=True,
                    )
                add(
                    f"{block}.o.weight",
                    (dim, inner),
                    layer + (keras_name, "output_projector", "kernel"),
                    transpose=True,
                )
                add(
                    f"{prefix}.{index}.layer_norm.weight",
                    (dim,),
                    layer + (f"{keras_name}_layer_norm", "weight"),
                )
            if i == 0:  # Only the first layer of a stack owns the bias.
                add(
                    f"{prefix}.0.SelfAttention.relative_attention_bias.weight",
                    buckets,
                    layer + ("self_attention", "relative_attention_bias"),
                )
            dense = f"{prefix}.{2 if is_decoder else 1}"
            if kwargs["use_gated_activation"]:
                # KerasHub: act(input_projector(x)) * gate_projector(x);
                # HF: act(wi_0(x)) * wi_1(x).
                inputs = (("wi_0", "input_projector"), ("wi_1", "gate_projector"))
            else:
                inputs = (("wi", "input_projector"),)
            for hf_name, keras_name in inputs:
                add(
                    f"{dense}.DenseReluDense.{hf_name}.weight",
                    (ff, dim),
                    layer + (keras_name, "kernel"),
                    transpose=True,
                )
            add(
                f"{dense}.DenseReluDense.wo.weight",
                (dim, ff),
                layer + ("output_projector", "kernel"),
                transpose=True,
            )
            add(
                f"{dense}.layer_norm.weight",
                (dim,),
                layer + ("layer_norm", "weight"),
            )
        add(
            f"{hf_stack}.final_layer_norm.weight",
            (dim,),
            (f"{hf_stack}_layer_norm", "weight"),
        )
    return plan


def _resolve(backbone, layer_path):
    obj = backbone
    for part in layer_path:
        obj = obj[part] if isinstance(part, int) else getattr(obj, part)
    return obj


def _check_checkpoint(files, plan, path):
    """Fails on missing/mis-shaped weights before anything is built."""
    # Some exports store only the per-stack copies of the shared embedding.
    if "shared.weight" not in files and "encoder.embed_tokens.weight" in files:
        files["shared.weight"] = files["encoder.embed_tokens.weight"]
        aliases = {"shared.weight": "encoder.embed_tokens.weight"}
    else:
        aliases = {}
    missing = [key for key, *_ in plan if key not in files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise HFCheckpointError(
            f"Missing weight '{missing[0]}'{more} in '{path}': the "
            "checkpoint does not match its config.json (num_layers, "
            "feed_forward_proj, tie_word_embeddings)."
        )
    handles = {}
    try:
        for key, shape, _, _ in plan:
            source_key = aliases.get(key, key)
            file_path = files[key]
            if file_path not in handles:
                handles[file_path] = safe_open(file_path, framework="np")
            actual = tuple(handles[file_path].get_slice(source_key).get_shape())
            if actual != tuple(shape):
                raise HFCheckpointError(
                    f"Weight '{source_key}' in '{path}' has shape "
                    f"{list(actual)}, but config.json implies {list(shape)} "
                    "(vocab_size, d_model, d_kv, num_heads, d_ff)."
                )
    finally:
        handles.clear()
    known = {key for key, *_ in plan} | set(_IGNORED_KEYS) | set(aliases.values())
    if "lm_head.weight" in files:
        known.add("lm_head.weight")  # Tied checkpoints may still store it.
    unexpected = sorted(key for key in files if key not in known)
    if unexpected:
        raise_keys = [
            key
            for key in unexpected
            if key.startswith(("encoder.block.", "decoder.block."))
        ]
        if raise_keys:
            raise HFCheckpointError(
                f"Unexpected weight '{raise_keys[0]}' in '{path}': the "
                "checkpoint has layers or feed-forward weights that its "
                "config.json (num_layers, feed_forward_proj) does not "
                "describe."
            )
        warnings.warn(
            f"Ignoring {len(unexpected)} unknown weight(s) in '{path}': "
            f"{unexpected[:5]}"
        )
    return aliases


# Tensors larger than this are read and assigned in row blocks (TensorFlow
# backend), so a large embedding never exists twice in memory at once.
_CHUNK_BYTES = 16 * 2**20


def _assign_tensor(variable, file, key, transpose):
    """Copies checkpoint tensor `key` into `variable`, in row blocks when it
    is large and the backend supports sliced assignment."""
    tensor_slice = file.get_slice(key)
    shape = tuple(tensor_slice.get_shape())
    itemsize = np.dtype(variable.dtype).itemsize
    total_bytes = int(np.prod(shape, dtype=np.int64)) * itemsize
    sliceable = (
        keras.backend.backend() == "tensorflow"
        and len(shape) == 2
        and total_bytes > _CHUNK_BYTES
    )
    if not sliceable:
        tensor = file.get_tensor(key)
        if transpose:
            tensor = tensor.T
        variable.assign(tensor.astype(variable.dtype, copy=False))
        return
    block = max(1, _CHUNK_BYTES // (shape[1] * itemsize))
    target = variable.value  # The tf.Variable: supports sliced assign.
    for start in range(0, shape[0], block):
        stop = min(start + block, shape[0])  # get_slice does not clamp.
        chunk = tensor_slice[start:stop].astype(variable.dtype, copy=False)
        if transpose:
            target[:, start:stop].assign(chunk.T)
        else:
            target[start:stop].assign(chunk)
        del chunk


def _assign_weights(backbone, files, plan, aliases):
    """Reads tensors one at a time and assigns them.

    Each tensor is read through its own short-lived `safe_open`, so the
    memory-mapped file pages are released after every tensor instead of
    accumulating in the resident set for the whole file, and large tensors
    (the embeddings) are copied in row blocks: memory holds the backbone plus
    at most one checkpoint tensor in flight.
    """
    for key, _, layer_path, transpose in plan:
        variable = _resolve(backbone, layer_path)
        expected = tuple(variable.shape)
        with safe_open(files[key], framework="np") as file:
            source_key = aliases.get(key, key)
            shape = tuple(file.get_slice(source_key).get_shape())
            if transpose:
                shape = shape[::-1]
            if shape != expected:
                raise HFCheckpointError(
                    f"Weight '{source_key}' maps to '{variable.path}' of "
                    f"shape {expected} but has {shape} after transposition."
                )
            _assign_tensor(variable, file, source_key, transpose)


def load_hf_t5(
    path,
    *,
    encoder_sequence_length=512,
    decoder_sequence_length=128,
    dtype=None,
    add_sentinels=True,
):
    """Loads a local Hugging Face T5 checkpoint as KerasHub objects.

    No network and no torch: reads `config.json`, the safetensors weights
    (single file or sharded with `model.safetensors.index.json`) one tensor
    at a time, and `spiece.model`. Works for original T5 (ReLU, tied head)
    and T5 1.1 / LM-adapted / Flan-T5 / mT5 (gated GELU, untied head); see
    the module docstring for the weight mapping.

    Args:
        path: directory of a Hugging Face T5 checkpoint (as written by
            `T5ForConditionalGeneration.save_pretrained` or downloaded from
            the Hub).
        encoder_sequence_length: the preprocessor's encoder length.
        decoder_sequence_length: the preprocessor's decoder length (also the
            default `generate()` `max_length`).
        dtype: the backbone's dtype / dtype policy; `None` means float32.
            Weights are cast to it (bfloat16 / float16 checkpoints load fine).
        add_sentinels: give the tokenizer T5's `<extra_id_N>` sentinel ids
            (seqio / Hugging Face numbering).

    Returns:
        `(backbone, preprocessor)`: a `keras_hub.models.T5Backbone` and a
        `keras_hub.models.T5Seq2SeqLMPreprocessor` with a `T5Tokenizer`.

    Raises:
        HFCheckpointError: unsupported architecture (not `model_type` t5/mt5,
            encoder-only, unequal encoder/decoder depth, non-default
            relative attention buckets), a missing weight, or a weight whose
            shape disagrees with `config.json`; the message names the weight
            or field.

    Example:
    ```python
    from keras_prompt.convert import load_hf_t5, save_keras_preset

    # e.g. huggingface-cli download google/t5-base-lm-adapt --local-dir t5-base-lm-adapt
    backbone, preprocessor = load_hf_t5("t5-base-lm-adapt")
    save_keras_preset(backbone, preprocessor, "t5_base_lm_adapt_preset")
    ```
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise HFCheckpointError(f"'{path}' is not a directory.")
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise HFCheckpointError(f"No 'config.json' in '{path}'.")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise HFCheckpointError(f"'{config_path}' is not a JSON object.")
    kwargs = _parse_hf_t5_config(config, config_path)
    files = _weight_files(path)
    plan = _weight_plan(kwargs)
    aliases = _check_checkpoint(files, plan, path)
    proto = load_hf_t5_sentencepiece(
        path, kwargs["vocabulary_size"], add_sentinels=add_sentinels
    )

    backbone = keras_hub.models.T5Backbone(
        dtype=dtype if dtype is not None else "float32", **kwargs
    )
    _assign_weights(backbone, files, plan, aliases)
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer,
        encoder_sequence_length=encoder_sequence_length,
        decoder_sequence_length=decoder_sequence_length,
    )
    return backbone, preprocessor


def save_keras_preset(backbone, preprocessor, preset_dir):
    """Writes a backbone (and preprocessor) as a local KerasHub preset.

    The directory afterwards loads offline with
    `keras_hub.models.T5Backbone.from_preset(preset_dir)`,
    `keras_hub.models.T5Seq2SeqLMPreprocessor.from_preset(preset_dir)` and
    `keras_prompt.models.PromptedT5Seq2SeqLM.from_preset(preset_dir)`. A T5
    1.1 backbone's activation is stored by its registered name
    `"keras_prompt>gelu_tanh"`: `import keras_prompt` (which registers it)
    before loading such a preset with plain KerasHub.

    Args:
        backbone: a `keras_hub.models.T5Backbone`.
        preprocessor: a `keras_hub.models.T5Seq2SeqLMPreprocessor`, or `None`
            to save the backbone only.
        preset_dir: output directory (created if needed).

    Returns:
        `preset_dir`.

    Example:
    ```python
    backbone, preprocessor = load_hf_t5("flan-t5-small")
    save_keras_preset(backbone, preprocessor, "flan_t5_small_preset")
    backbone = keras_hub.models.T5Backbone.from_preset("flan_t5_small_preset")
    ```
    """
    preset_dir = os.fspath(preset_dir)
    if not isinstance(backbone, keras_hub.models.T5Backbone):
        raise TypeError(
            f"backbone must be a keras_hub.models.T5Backbone; got "
            f"{type(backbone).__name__}."
        )
    if preprocessor is not None:
        tokenizer_size = preprocessor.tokenizer.vocabulary_size()
        if tokenizer_size > backbone.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {tokenizer_size} ids but the backbone's "
                f"vocabulary_size is {backbone.vocabulary_size}."
            )
    os.makedirs(preset_dir, exist_ok=True)
    backbone.save_to_preset(preset_dir)
    if preprocessor is not None:
        preprocessor.save_to_preset(preset_dir)
    return preset_dir
