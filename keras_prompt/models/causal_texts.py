"""The one rule that turns a decoder-only model's ids into text."""

import tensorflow as tf


def causal_texts(tokenizer, token_ids, keep=None):
    """Ids -> one string per row, in TensorFlow ops (eager, `tf.function`
    and every SavedModel signature alike).

    A row's text is the tokenizer's detokenization of its ids where `keep`
    is true, without special tokens and ids the tokenizer lacks (so no id
    fails); bytes that are not UTF-8 become U+FFFD.

    Args:
        tokenizer: the model's KerasHub tokenizer.
        token_ids: int `[batch, length]`.
        keep: optional bool `[batch, length]`, the ids to render.

    Returns:
        string `[batch]`.

    Example:
    ```python
    causal_texts(model.preprocessor.tokenizer, [[50256, 31373, 995]])
    ```
    """
    token_ids = tf.cast(token_ids, tf.int32)
    valid = tf.logical_and(
        token_ids >= 0, token_ids < int(tokenizer.vocabulary_size())
    )
    for special_id in tokenizer.special_token_ids:
        valid = tf.logical_and(valid, tf.not_equal(token_ids, int(special_id)))
    if keep is not None:
        valid = tf.logical_and(valid, tf.cast(keep, tf.bool))
    texts = tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, valid))
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace"
    )
