"""Rank classification for decoder-only models: the log-likelihood of each
candidate continuation of an input."""

import numpy as np
from keras import ops

from keras_prompt.models.rank_classification import choice_token_lists


def continuation_ids(choices, tokenizer=None):
    """Token-id lists of candidate continuations, the end token appended to
    string choices.

    Args:
        choices: strings (tokenized as they are: give a byte-level BPE's
            label words the leading space they have after the input) or
            token-id lists (used as given).
        tokenizer: a KerasHub tokenizer, for string choices.

    Returns:
        `(ids, mask)`: int32 `[num_choices, longest]`, right-padded.

    Example:
    ```python
    ids, mask = continuation_ids([" positive", " negative"], tokenizer)
    ```
    """
    rows = choice_token_lists(choices, tokenizer)
    longest = max(len(row) for row in rows)
    ids = np.zeros((len(rows), longest), "int32")
    mask = np.zeros((len(rows), longest), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
        mask[index, : len(row)] = 1
    return ids, mask


def continuation_log_likelihoods(
    logits_fn, token_ids, padding_mask, choice_ids, choice_mask, prompts=None
):
    """`[batch, num_choices]` summed log-probabilities of each choice after
    each input.

    Row `b * num_choices + c` is input `b` (its real tokens, right-padded)
    followed by choice `c`, so one call scores every pair; built with tensor
    ops only, so compiled and exported graphs run it too.

    Args:
        logits_fn: `fn(token_ids, padding_mask, prompts) -> logits` over
            the input positions (`PromptedCausalLM.prompted_logits`).
        token_ids, padding_mask: int `[batch, length]`, right-padded.
        choice_ids, choice_mask: int `[num_choices, choice_length]`.
        prompts: optional per-example prompts `[batch, P, H]`.
    """
    token_ids = ops.cast(token_ids, "int32")
    padding_mask = ops.cast(padding_mask, "int32")
    choice_ids = ops.cast(choice_ids, "int32")
    choice_mask = ops.cast(choice_mask, "int32")
    batch_size = ops.shape(token_ids)[0]
    num_choices = ops.shape(choice_ids)[0]
    choice_length = ops.shape(choice_ids)[1]
    length = ops.shape(token_ids)[1] + choice_length

    # Pairs: inputs repeated per choice, choices tiled per input.
    inputs = ops.repeat(token_ids, num_choices, axis=0)
    input_lengths = ops.sum(ops.repeat(padding_mask, num_choices, axis=0), 1)
    continuations = ops.tile(choice_ids, (batch_size, 1))
    continuation_mask = ops.tile(choice_mask, (batch_size, 1))
    positions = ops.expand_dims(ops.arange(length, dtype="int32"), 0)
    offsets = positions - ops.expand_dims(input_lengths, 1)
    in_input = offsets < 0
    in_choice = ops.logical_and(offsets >= 0, offsets < choice_length)
    choice_index = ops.clip(offsets, 0, choice_length - 1)
    padded_inputs = ops.pad(inputs, ((0, 0), (0, choice_length)))
    pair_ids = ops.where(
        in_input,
        padded_inputs,
        ops.where(
            in_choice, ops.take_along_axis(continuations, choice_index, 1), 0
        ),
    )
    scored = ops.where(
        in_choice, ops.take_along_axis(continuation_mask, choice_index, 1), 0
    )
    pair_mask = ops.cast(ops.logical_or(in_input, scored > 0), "int32")
    if prompts is not None:
        prompts = ops.repeat(prompts, num_choices, axis=0)
    logits = logits_fn(pair_ids, pair_mask, prompts)
    # Position j's logits predict token j + 1.
    log_probs = ops.log_softmax(logits[:, :-1], axis=-1)
    targets = pair_ids[:, 1:]
    picked = ops.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    weights = ops.cast(scored[:, 1:], picked.dtype)
    return ops.reshape(
        ops.sum(picked * weights, axis=-1), (batch_size, num_choices)
    )
