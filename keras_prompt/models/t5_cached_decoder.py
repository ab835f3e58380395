"""One cached decoding step of a KerasHub `T5Backbone`'s decoder."""

from keras import ops

# KerasHub adds `(1 - mask) * -1e9` to masked attention scores.
MASK_BIAS = -1e9


class T5CachedDecoder:
    """Runs a T5 decoder one position at a time with key/value caches.

    The step that `keras_prompt.models.decoding_loop.decode_tokens` drives
    for `PromptedT5Seq2SeqLM.generate()` and for every exported graph. It
    calls the backbone's own sublayers (embedding, layer norms, projections,
    the first layer's relative position bias, the feed-forward layers) in
    the order of KerasHub's `T5TransformerLayer`, with dropout off, and
    keeps each layer's caches in the layout the attention matmuls read
    (`[batch, heads, length, head_dim]`): the cross-attention keys and
    values are projected once per request, the self-attention cache gets
    one position per step, and the head runs on the new position only.
    Everything follows the backbone's dtype policy.

    Args:
        backbone: a `keras_hub.models.T5Backbone`.
        logits_fn: maps decoder hidden states to float32 logits (the task
            model's head rule).
        portable: write the self-attention cache with `ops.scatter_update`
            (TensorFlow's `TensorScatterUpdate`: ONNX `ScatterND`, a LiteRT
            builtin) instead of `ops.slice_update`, whose
            `XlaDynamicUpdateSlice` tf2onnx rejects and plain TensorFlow runs
            only through XLA; both write the same values.

    Example:
    ```python
    decoder = T5CachedDecoder(model.backbone, model.logits_from_hidden)
    context, cache = decoder.init_cache(encoder_outputs, encoder_mask, 8)
    logits, cache = decoder.step(start_ids[:, 0], 0, cache, context)
    ```
    """

    def __init__(self, backbone, logits_fn, portable=False):
        self.backbone = backbone
        self.logits_fn = logits_fn
        self.portable = bool(portable)
        self.layers = backbone.decoder_transformer_layers
        self.num_heads = backbone.num_heads
        self.head_dim = backbone.key_value_dim or (
            backbone.hidden_dim // backbone.num_heads
        )

    def _project_heads(self, projector, x):
        """`projector(x)` split into heads: `[batch, length, hidden]` ->
        `[batch, heads, length, head_dim]` (the encoder's keys and values).

        The shape is read from `x`, not from the projection: tf2onnx's
        reshape optimizer reads the shape of a `Tensordot` output from its
        2-D matmul, and no -1 is used, which ONNX Runtime cannot resolve for
        an empty batch."""
        shape = ops.shape(x)
        y = ops.reshape(
            projector(x), (shape[0], shape[1], self.num_heads, self.head_dim)
        )
        return ops.transpose(y, (0, 2, 1, 3))

    def _step_heads(self, projector, x):
        """`projector(x)` of one position per row: `[batch, hidden]` ->
        `[batch, heads, 1, head_dim]`. A decoding step keeps its states 2-D,
        so every projection is one plain matmul, and reshapes to constant
        shapes (the exports never decode an empty batch), so no shape
        arithmetic enters the loop."""
        return ops.reshape(projector(x), (-1, self.num_heads, 1, self.head_dim))

    def _attend(self, query, keys, values, bias, attention):
        """T5 attention (unscaled scores) of one query position per row on
        split heads (`[batch, heads, 1, head_dim]`); `bias` holds the
        position bias and the mask. Returns `[batch, hidden]`."""
        scores = ops.matmul(query, ops.swapaxes(keys, -1, -2))
        weights = ops.softmax(scores + ops.cast(bias, scores.dtype), axis=-1)
        # [batch, heads, 1, head_dim] -> [batch, heads * head_dim]: with one
        # position no transpose is needed.
        output = ops.reshape(ops.matmul(weights, values), (-1, attention.inner_dim))
        return attention.output_projector(output)

    def _write(self, cache, update, index, rows):
        """`cache` `[batch, heads, length, head_dim]` with position `index`
        replaced by `update` `[batch, heads, 1, head_dim]`. `rows` are the
        scatter indices of that position (portable mode)."""
        if not self.portable:
            return ops.slice_update(cache, [0, 0, index, 0], update)
        return ops.scatter_update(cache, rows, update)

    def _rows(self, grid, index):
        """Scatter indices `[batch, heads, 1, 3]` of position `index`: the
        (row, head) grid of the context plus the position."""
        position = ops.full(ops.shape(grid)[:3] + (1,), index, "int32")
        return ops.concatenate([grid, position], axis=-1)

    def init_cache(self, encoder_outputs, encoder_padding_mask, max_length):
        """The per-request context and the initial cache.

        Args:
            encoder_outputs: `[batch, source_length, hidden_dim]`.
            encoder_padding_mask: `[batch, source_length]`.
            max_length: decoder length (start token included).

        Returns:
            `(context, cache)`. `context` holds what stays fixed while
            decoding (every layer's cross-attention keys and values, the
            cross-attention mask bias, the cache rows' scatter grid); `cache`
            the self-attention keys and
            values of every layer (zeros), which each step updates. The
            context is read from outside the decoding loop, not carried
            through it, so no runtime copies it per step.
        """
        dtype = encoder_outputs.dtype
        batch_size = ops.shape(encoder_outputs)[0]
        empty = ops.zeros(
            (batch_size, self.num_heads, max_length, self.head_dim), dtype
        )
        cache = tuple(empty for _ in range(2 * len(self.layers)))
        cross = []
        for layer in self.layers:
            attention = layer.cross_attention
            cross.append(self._project_heads(attention.key_projector, encoder_outputs))
            cross.append(
                self._project_heads(attention.value_projector, encoder_outputs)
            )
        mask = ops.cast(encoder_padding_mask, dtype)
        cross_bias = ops.expand_dims(
            ops.expand_dims((1.0 - mask) * MASK_BIAS, 1), 1
        )
        # (row, head) of every cache row that a step writes, for the
        # portable write (`scatter_update`).
        shape = (batch_size, self.num_heads, 1, 1)
        grid = ops.concatenate(
            [
                ops.broadcast_to(
                    ops.reshape(ops.arange(batch_size, dtype="int32"), (-1, 1, 1, 1)),
                    shape,
                ),
                ops.broadcast_to(
                    ops.reshape(
                        ops.arange(self.num_heads, dtype="int32"), (1, -1, 1, 1)
                    ),
                    shape,
                ),
            ],
            axis=-1,
        )
        return (tuple(cross), cross_bias, grid), cache

    def step_function(self, context):
        """`step(token_ids, index, cache)` for `decode_tokens`, reading
        `context` (from `init_cache`)."""

        def step(token_ids, index, cache):
            return self.step(token_ids, index, cache, context)

        return step

    def step(self, token_ids, index, cache, context):
        """Decodes position `index`.

        Args:
            token_ids: int32 `[batch]`, the token of each row at position
                `index`.
            index: int32 scalar.
            cache: from `init_cache` or the previous step.
            context: from `init_cache`.

        Returns:
            `(logits, cache)`: float32 `[batch, vocabulary]` for position
            `index + 1`, and the cache with position `index` written.
        """
        self_caches = list(cache)
        cross_caches, cross_bias, grid = context
        rows = self._rows(grid, index) if self.portable else None
        backbone = self.backbone
        x = backbone.token_embedding(token_ids)
        length = ops.shape(self_caches[0])[2]
        # The first layer's relative position bias plus the causal mask (key
        # position <= query position), shared by all layers as in KerasHub.
        bias = self.layers[0].self_attention.compute_bias(
            1, length, query_start_index=index
        )
        bias = ops.cast(bias, x.dtype)
        future = ops.cast(
            ops.greater(ops.arange(length, dtype="int32"), index), x.dtype
        )
        bias = bias + ops.reshape(future * MASK_BIAS, (1, 1, 1, length))
        for number, layer in enumerate(self.layers):
            attention = layer.self_attention
            h = layer.self_attention_layer_norm(x)
            query = self._step_heads(attention.query_projector, h)
            keys = self._write(
                self_caches[2 * number],
                self._step_heads(attention.key_projector, h),
                index,
                rows,
            )
            values = self._write(
                self_caches[2 * number + 1],
                self._step_heads(attention.value_projector, h),
                index,
                rows,
            )
            self_caches[2 * number], self_caches[2 * number + 1] = keys, values
            x = x + self._attend(query, keys, values, bias, attention)

            attention = layer.cross_attention
            h = layer.cross_attention_layer_norm(x)
            query = self._step_heads(attention.query_projector, h)
            x = x + self._attend(
                query,
                cross_caches[2 * number],
                cross_caches[2 * number + 1],
                cross_bias,
                attention,
            )

            h = layer.layer_norm(x)
            if layer.use_gated_activation:
                h = layer.input_projector(h) * layer.gate_projector(h)
            else:
                h = layer.input_projector(h)
            x = x + layer.output_projector(h)
        x = backbone.decoder_layer_norm(x)
        return self.logits_fn(x), tuple(self_caches)
