"""Model configurations and synthetic batches of the benchmarks.

All backbones are randomly initialised (deterministically, see
`keras_prompt.models.tiny_t5.initialize_t5_weights`): speed and memory do
not depend on the values of the weights.
"""

import numpy as np

# name -> T5Backbone arguments. `tied=True` is the original T5 layout (ReLU,
# tied head, logits scaled by hidden_dim**-0.5); `tied=False` is T5 1.1
# (gated GELU, untied head). The t5-small-sized ones match google-t5/t5-small
# (60M parameters) in shape, and the T5 1.1 layout on the same shape, with
# T5's dropout 0.1 (active in training only, as in the PyTorch reference).
MODEL_CONFIGS = {
    "tiny": dict(
        vocabulary_size=128,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        tied=True,
        dropout=0.0,
    ),
    "t5_small": dict(
        vocabulary_size=32128,
        hidden_dim=512,
        num_layers=6,
        num_heads=8,
        intermediate_dim=2048,
        tied=True,
        dropout=0.1,
    ),
    "t5_small_v11": dict(
        vocabulary_size=32128,
        hidden_dim=512,
        num_layers=6,
        num_heads=8,
        intermediate_dim=2048,
        tied=False,
        dropout=0.1,
    ),
}

# The defaults.
DEFAULTS = dict(
    batch_size=8,
    encoder_length=128,
    decoder_length=8,
    prompt_length=20,
    dtype="float32",
)

END_TOKEN_ID = 1


def layout_name(config_name):
    return "original (ReLU, tied)" if MODEL_CONFIGS[config_name]["tied"] else (
        "T5 1.1 (gated GELU, untied)"
    )


def build_backbone(config_name, seed=0, dropout=None):
    """A deterministic random `T5Backbone` for `config_name`.

    Same distributions as `keras_prompt.models.tiny_t5.initialize_t5_weights`
    (Hugging Face T5's), but drawn directly in float32 one weight at a time,
    so that building a t5-small-sized model does not add a float64 copy of
    the embedding to the process's peak RSS.
    """
    import keras_hub
    import numpy as np

    config = dict(MODEL_CONFIGS[config_name])
    if dropout is not None:
        config["dropout"] = float(dropout)
    tied = config.pop("tied")
    backbone = keras_hub.models.T5Backbone(
        activation="relu" if tied else "gelu",
        use_gated_activation=not tied,
        tie_embedding_weights=tied,
        **config,
    )
    rng = np.random.default_rng(seed)
    hidden_dim = backbone.hidden_dim
    key_value_dim = backbone.key_value_dim or hidden_dim // backbone.num_heads
    for weight in backbone.weights:
        path, shape = weight.path, tuple(weight.shape)
        if path.endswith("/weight") and len(shape) == 1:
            weight.assign(np.ones(shape, "float32"))
            continue
        if path == "token_embedding/embeddings":
            scale = 1.0
        elif path.endswith("query_projector/kernel"):
            scale = (hidden_dim * key_value_dim) ** -0.5
        else:
            scale = shape[0] ** -0.5
        value = rng.standard_normal(shape, dtype=np.float32)
        value *= np.float32(scale)
        weight.assign(value)
        del value
    return backbone


def build_model(config_name, prompt_length, seed=0, compile=False, dropout=None):
    """A `PromptedT5Seq2SeqLM` on a fresh random backbone (`dropout`
    overrides the configuration's)."""
    from keras_prompt import PromptedT5Seq2SeqLM

    backbone = build_backbone(config_name, seed=seed, dropout=dropout)
    return PromptedT5Seq2SeqLM(
        backbone,
        prompt_length=prompt_length,
        prompt_initializer="random_uniform",
        seed=seed,
        compile=compile,
    )


def vocabulary_size(config_name):
    return MODEL_CONFIGS[config_name]["vocabulary_size"]


def encoder_batch(batch_size, encoder_length, vocab, seed=0):
    """Encoder ids/mask: full-length rows ending in `</s>` (no padding, so
    every example costs the full length)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, vocab, size=(batch_size, encoder_length)).astype("int32")
    ids[:, -1] = END_TOKEN_ID
    mask = np.ones_like(ids)
    return {"encoder_token_ids": ids, "encoder_padding_mask": mask}


def training_batch(batch_size, encoder_length, decoder_length, vocab, seed=0):
    """`(x, y)`: teacher-forced decoder inputs (start token 0 then the
    target shifted right) and targets of `decoder_length` tokens."""
    rng = np.random.default_rng(seed + 1)
    x = encoder_batch(batch_size, encoder_length, vocab, seed)
    targets = rng.integers(3, vocab, size=(batch_size, decoder_length)).astype(
        "int32"
    )
    targets[:, -1] = END_TOKEN_ID
    decoder_ids = np.concatenate(
        [np.zeros((batch_size, 1), "int32"), targets[:, :-1]], axis=1
    )
    x["decoder_token_ids"] = decoder_ids
    x["decoder_padding_mask"] = np.ones_like(decoder_ids)
    return x, targets


def generation_batch(batch_size, encoder_length, new_tokens, vocab, seed=0):
    """KerasHub `generate()` token inputs: the decoder holds the start token
    and `new_tokens` free positions (mask 0) that greedy decoding fills."""
    x = encoder_batch(batch_size, encoder_length, vocab, seed)
    decoder_ids = np.zeros((batch_size, new_tokens + 1), "int32")
    decoder_mask = np.zeros_like(decoder_ids)
    decoder_mask[:, 0] = 1
    x["decoder_token_ids"] = decoder_ids
    x["decoder_padding_mask"] = decoder_mask
    return x
