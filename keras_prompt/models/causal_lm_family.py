"""How a KerasHub decoder-only backbone runs on embeddings, with or without
a key/value cache."""

import math

from keras import ops

# Backbone class name -> (what follows the token embedding, the transformer
# layers' padding-mask keyword, their cache keyword, their cache-index
# keyword). The rest is common to these families: `token_embedding`, a list
# of `transformer_layers`, a final `layer_norm`, the head as
# `token_embedding(x, reverse=True)` (tied or not, soft-capped or not).
_FAMILIES = {
    "GPT2Backbone": (
        "positions",
        "decoder_padding_mask",
        "self_attention_cache",
        "self_attention_cache_update_index",
    ),
    "GemmaBackbone": ("scale", "padding_mask", "cache", "cache_update_index"),
    **{
        name: (
            None,
            "decoder_padding_mask",
            "self_attention_cache",
            "self_attention_cache_update_index",
        )
        for name in (
            "LlamaBackbone",
            "Llama3Backbone",
            "MistralBackbone",
            "QwenBackbone",
            "Qwen3Backbone",
        )
    },
}


def supported_families():
    """Names of the backbone classes `CausalLMFamily` runs."""
    return sorted(_FAMILIES)


class CausalLMFamily:
    """Runs a KerasHub decoder-only backbone's own layers on embeddings.

    KerasHub's backbones take token ids; a soft prompt needs the layers on
    `concat(prompt, embed_tokens(ids))`. This calls the backbone's own
    sublayers in the order its functional graph and its task's
    `call_with_cache` do, and places the prompt where PEFT does (Hugging
    Face transformers 5, where the prompt is passed with `inputs_embeds`):
    Gemma's `sqrt(hidden_dim)` scale is part of its token embedding (the
    prompt is not scaled), GPT-2 adds its learned positions to the whole
    prompted sequence (positions run over prompt + input), Llama, Mistral
    and Qwen rotate positions inside attention.

    The cache is a tuple with one tensor per layer, `[batch, 2, length,
    key_value_heads, head_dim]` (the layout each layer reads), written by
    the layers themselves.

    Args:
        backbone: a `keras_hub.models.GPT2Backbone`, `GemmaBackbone`,
            `LlamaBackbone` (Llama 3 too), `MistralBackbone`, `QwenBackbone`
            or `Qwen3Backbone`.

    Example:
    ```python
    family = CausalLMFamily(backbone)
    x = family.embedded(concat(prompt, family.embed_tokens(ids)))
    hidden = family.layers(x, padding_mask)
    logits = family.logits(hidden)
    ```
    """

    def __init__(self, backbone):
        name = next(
            (
                cls.__name__
                for cls in type(backbone).__mro__
                if cls.__name__ in _FAMILIES
            ),
            None,
        )
        if name is None:
            raise TypeError(
                f"{type(backbone).__name__} is not a decoder-only backbone "
                f"keras-prompt runs; supported: {supported_families()}."
            )
        self.backbone = backbone
        self.family = name
        (
            self._transform,
            self._mask_keyword,
            self._cache_keyword,
            self._index_keyword,
        ) = _FAMILIES[name]
        self.num_layers = len(backbone.transformer_layers)
        num_heads = getattr(backbone, "num_query_heads", None) or (
            backbone.num_heads
        )
        self.num_key_value_heads = (
            getattr(backbone, "num_key_value_heads", None) or num_heads
        )
        self.head_dim = getattr(backbone, "head_dim", None) or (
            backbone.hidden_dim // num_heads
        )
        # Learned positions bound the length; rotary ones do not.
        self.max_sequence_length = (
            backbone.max_sequence_length if self._transform == "positions" else None
        )

    @property
    def embedding_scale(self):
        """The factor `embed_tokens` applies to the token embedding rows."""
        if self._transform == "scale":
            return math.sqrt(self.backbone.hidden_dim)
        return 1.0

    def embed_tokens(self, token_ids):
        """Token embeddings as the family's first layer sees them."""
        x = self.backbone.token_embedding(token_ids)
        if self._transform == "scale":
            # A Python float: exported graphs must not capture eager tensors.
            x = x * ops.cast(self.embedding_scale, x.dtype)
        return x

    def embedded(self, x, start_index=0, training=None):
        """The family's step between the (prompted) embeddings and the
        first layer, on `x` whose first position is `start_index`."""
        backbone = self.backbone
        if self._transform == "positions":
            positions = backbone.position_embedding(x, start_index=start_index)
            x = backbone.embeddings_add((x, positions))
            return backbone.embeddings_dropout(x, training=training)
        return x

    def layers(self, x, padding_mask, training=None):
        """All transformer layers over a whole sequence (causal, padded)."""
        for layer in self.backbone.transformer_layers:
            x = layer(x, **{self._mask_keyword: padding_mask}, training=training)
        return x

    def empty_cache(self, batch_size, length):
        """Zeros for every layer's keys and values of `length` positions."""
        shape = (batch_size, 2, length, self.num_key_value_heads, self.head_dim)
        dtype = self.backbone.compute_dtype
        return tuple(ops.zeros(shape, dtype) for _ in range(self.num_layers))

    def cached_layers(self, x, cache, index):
        """All layers on positions `[index, index + length)` of `x`, reading
        and writing `cache`; returns `(x, cache)`."""
        updated = []
        for layer, layer_cache in zip(self.backbone.transformer_layers, cache):
            x, layer_cache = layer(
                x,
                **{self._cache_keyword: layer_cache, self._index_keyword: index},
            )
            updated.append(layer_cache)
        return x, tuple(updated)

    def logits(self, x):
        """The final norm and head, as float32 logits."""
        x = self.backbone.layer_norm(x)
        return ops.cast(self.backbone.token_embedding(x, reverse=True), "float32")
