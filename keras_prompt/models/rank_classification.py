"""Rank classification: the log-likelihood of candidate targets."""

import numpy as np
from keras import ops

# T5 starts decoding from the padding id.
DECODER_START_ID = 0
PAD_ID = 0


def choice_token_lists(choices, tokenizer=None):
    """Each candidate's token ids: a string tokenized with `tokenizer`, the
    end token appended; a token-id list as given. Raises `ValueError` for
    no choices, an empty one, or a string without a tokenizer."""
    if not choices:
        raise ValueError("Rank classification needs at least one choice.")
    targets = []
    for choice in choices:
        if isinstance(choice, str):
            if tokenizer is None:
                raise ValueError(
                    f"String choice {choice!r} needs a tokenizer (a model with "
                    "a preprocessor); pass token-id lists instead."
                )
            target = [int(i) for i in np.asarray(tokenizer(choice)).reshape(-1)]
            target.append(int(tokenizer.end_token_id))
        else:
            target = [int(i) for i in choice]
        if not target:
            raise ValueError(f"Choice {choice!r} has no tokens.")
        targets.append(target)
    return targets


def choice_tensors(choices, tokenizer=None):
    """Decoder inputs, targets and masks for candidate targets.

    Args:
        choices: candidate target strings (tokenized with `tokenizer`, the
            end token appended) or token-id lists (used as given).
        tokenizer: a `keras_hub.models.T5Tokenizer`, for string choices.

    Returns:
        `(decoder_token_ids, target_ids, target_mask)`, each
        `int32[num_choices, longest]`, right-padded; the decoder inputs are
        the targets shifted right behind the start token.

    Example:
    ```python
    decoder_ids, targets, mask = choice_tensors(["yes", "no"], tokenizer)
    ```
    """
    targets = choice_token_lists(choices, tokenizer)
    length = max(len(target) for target in targets)
    target_ids = np.full((len(targets), length), PAD_ID, "int32")
    target_mask = np.zeros((len(targets), length), "int32")
    for row, target in enumerate(targets):
        target_ids[row, : len(target)] = target
        target_mask[row, : len(target)] = 1
    start = np.full((len(targets), 1), DECODER_START_ID, "int32")
    decoder_ids = np.concatenate([start, target_ids[:, :-1]], axis=1)
    return decoder_ids, target_ids, target_mask


def choice_log_likelihoods(
    model,
    encoder_token_ids,
    encoder_padding_mask,
    decoder_token_ids,
    target_ids,
    target_mask,
    prompts=None,
):
    """`[batch, num_choices]` summed target log-probabilities.

    The encoder runs once per example; every choice is decoded against it
    in one batch (row `b * num_choices + c` pairs example `b` with choice
    `c`).

    Args:
        model: a `PromptedT5Seq2SeqLM`.
        encoder_token_ids, encoder_padding_mask: `[batch, length]`.
        decoder_token_ids, target_ids, target_mask: from `choice_tensors`.
        prompts: optional per-example prompts `[batch, P, H]`.
    """
    encoder_outputs, encoder_padding_mask = model.encode(
        encoder_token_ids, encoder_padding_mask, prompts=prompts, training=False
    )
    batch_size = ops.shape(encoder_token_ids)[0]
    num_choices = ops.shape(decoder_token_ids)[0]
    logits = model.decode(
        ops.repeat(encoder_outputs, num_choices, axis=0),
        ops.repeat(encoder_padding_mask, num_choices, axis=0),
        ops.tile(decoder_token_ids, (batch_size, 1)),
        ops.tile(target_mask, (batch_size, 1)),
        training=False,
    )
    log_probs = ops.log_softmax(logits, axis=-1)
    targets = ops.tile(target_ids, (batch_size, 1))
    picked = ops.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    mask = ops.cast(ops.tile(target_mask, (batch_size, 1)), picked.dtype)
    return ops.reshape(
        ops.sum(picked * mask, axis=-1), (batch_size, num_choices)
    )
