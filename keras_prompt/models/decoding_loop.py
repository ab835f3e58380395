"""The one cached decoding loop of keras-prompt.

`PromptedT5Seq2SeqLM.generate()` (XLA-compiled) and every exported graph
(SavedModel, ONNX, LiteRT) decode with `decode_tokens`. The model supplies
the step (its own cached decoder) and the token choice (a KerasHub sampler in
Keras, greedy in the exports). The loop is written with ops that XLA, tf2onnx
and the TFLite converter all take: a `while_loop` over a flat tuple, reads by
`take`, writes by `where` over a one-hot position.
"""

from keras import ops


def greedy_next_token(logits, portable=False):
    """The id KerasHub's `GreedySampler` picks: argmax of the softmax.

    Args:
        logits: float `[batch, vocabulary]`.
        portable: take the argmax with `tf.argmax`. Keras's float argmax
            adds a `Bitcast`/`BitwiseAnd` sign test (it ranks -0.0 below
            0.0), which tf2onnx and TFLite reject; probabilities are never
            -0.0, so both give the same id.

    Returns:
        int32 `[batch]`.
    """
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    if portable:
        import tensorflow as tf

        return tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return ops.cast(ops.argmax(probabilities, axis=-1), "int32")


def sampler_next_token(sampler):
    """A `next_token` function drawing from a KerasHub sampler.

    Works with the samplers that choose one token from the step's
    probabilities (`greedy`, `top_k`, `top_p`, `random`, with their
    `temperature`); beam and contrastive search run loops of their own.
    """
    import keras_hub

    if isinstance(
        sampler,
        (keras_hub.samplers.BeamSampler, keras_hub.samplers.ContrastiveSampler),
    ):
        raise ValueError(
            f"`{type(sampler).__name__}` is not supported by keras-prompt's "
            "decoding loop; compile with sampler='greedy', 'top_k', 'top_p' "
            "or 'random'."
        )

    def next_token(logits):
        probabilities = sampler.compute_probabilities(logits)
        return ops.cast(sampler.get_next_token(probabilities), "int32")

    return next_token


def decode_tokens(
    step,
    cache,
    token_ids,
    fixed_mask,
    *,
    stop_token_ids,
    next_token,
    pad_id=0,
    start_index=0,
    end_positions=None,
    compile_loop=False,
):
    """Autoregressive decoding with a cache, one position per iteration.

    Iteration `i` feeds the token at position `i` to `step`, which writes it
    into the cache and returns the logits of position `i + 1`. Positions
    where `fixed_mask` is true keep their given token (a decoder prefix; a
    stop id there does not stop the row). After a row's first generated stop
    token every position holds `pad_id`. The loop ends when every row has
    stopped or the last position is written, so the cost of a step does not
    depend on how many tokens came before it.

    Args:
        step: `step(token_ids, index, cache) -> (logits, cache)` with
            `token_ids` int32 `[batch]` (position `index`), `index` an int32
            scalar and
            `logits` float `[batch, vocabulary]`. What stays fixed while
            decoding (e.g. the encoder's keys and values) belongs in the
            step's closure, not in the cache: loop variables are carried
            (in some runtimes copied) from step to step.
        cache: the cache `step` reads and returns (a tuple of tensors).
        token_ids: int32 `[batch, length]`; column 0 is the start token.
        fixed_mask: bool or int `[batch, length]`, true where `token_ids`
            holds a given token; column 0 must be true.
        stop_token_ids: tuple of ids that end a row, or `None`.
        next_token: `fn(logits) -> int32 [batch]` (see `greedy_next_token`
            and `sampler_next_token`).
        pad_id: the id written after a row's stop token.
        start_index: int32 scalar, the first position fed to `step`; the
            cache already holds every position before it (a causal LM's
            prefill) and `fixed_mask` is true up to and including it.
        end_positions: optional int32 `[batch]`, the last position each row
            may generate (a per-row token budget, so that a row's output
            does not depend on the other rows' lengths); a row ends there
            as at a stop token.
        compile_loop: run the loop as one XLA computation even when the
            caller is not compiled. A step is hundreds of small ops whose
            per-op cost XLA removes, while the large matmuls before the loop
            (the encoder, a prefill) are faster on TensorFlow's CPU kernels
            for large models. Exported graphs leave it off (they must hold
            plain TensorFlow ops).

    Returns:
        `(token_ids, padding_mask)`: int32 and bool `[batch, length]`; the
        mask is true up to and including each row's stop token.

    Example:
    ```python
    context, cache = decoder.init_cache(encoder_outputs, encoder_mask, 8)
    token_ids, mask = decode_tokens(
        decoder.step_function(context), cache, start_ids, start_mask,
        stop_token_ids=(1,), next_token=greedy_next_token,
    )
    ```
    """
    token_ids = ops.cast(token_ids, "int32")
    fixed_mask = ops.cast(fixed_mask, "bool")
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    positions = ops.arange(length, dtype="int32")
    # A row's stop position; `length` while it runs.
    no_stop = ops.full((batch_size,), length, "int32")

    def is_stop(ids):
        stops = ops.zeros_like(ids, "bool")
        for stop_id in stop_token_ids or ():
            stops = ops.logical_or(stops, ops.equal(ids, stop_id))
        return stops

    def cond(index, token_ids, stop_position, cache):
        running = ops.any(ops.equal(stop_position, length))
        return ops.logical_and(index < length - 1, running)

    def column(values, position):
        # A slice, not `ops.take` (which adds a negative-index select), to
        # constant shapes: no shape arithmetic in the loop.
        return ops.reshape(ops.slice(values, (0, position), (-1, 1)), (-1,))

    def body(index, token_ids, stop_position, cache):
        logits, cache = step(column(token_ids, index), index, cache)
        position = index + 1
        given = column(token_ids, position)
        fixed = column(fixed_mask, position)
        if end_positions is not None:
            # Past its budget a row has ended at its last position.
            over = ops.logical_and(
                position > end_positions, stop_position == length
            )
            stop_position = ops.where(over, position - 1, stop_position)
        stopped = stop_position < length
        chosen = ops.where(stopped, pad_id, next_token(logits))
        chosen = ops.where(fixed, given, chosen)
        new_stop = ops.logical_and(
            is_stop(chosen), ops.logical_not(ops.logical_or(fixed, stopped))
        )
        stop_position = ops.where(new_stop, position, stop_position)
        write = ops.expand_dims(ops.equal(positions, position), 0)
        token_ids = ops.where(write, ops.expand_dims(chosen, 1), token_ids)
        return index + 1, token_ids, stop_position, cache

    def run(start_index, token_ids, cache):
        return ops.while_loop(
            cond, body, (start_index, token_ids, no_stop, cache)
        )

    if compile_loop:
        import tensorflow as tf

        run = tf.function(run, jit_compile=True, autograph=False)
    _, token_ids, stop_position, _ = run(
        ops.convert_to_tensor(start_index, "int32"), token_ids, cache
    )
    padding_mask = ops.less_equal(
        ops.expand_dims(positions, 0), ops.expand_dims(stop_position, 1)
    )
    token_ids = ops.where(padding_mask, token_ids, pad_id)
    return token_ids, padding_mask
