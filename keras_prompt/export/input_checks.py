"""Checks of serving inputs, shared by every exported graph.

A SavedModel signature refuses a request with any bad row as a whole: its
in-graph asserts raise `InvalidArgument` naming the input, the rows and the
values (`assert_valid`). ONNX and LiteRT graphs cannot raise, so there every
row gets a defined answer instead (`RowProblems`): a bad row is computed
on harmless stand-in values and its output replaced (token ids: the pad id,
0 for T5; logits NaN), and the graph's `invalid_inputs` output says what was
wrong with it, as the sum of the `PROBLEMS` flags below (0 for a valid row).
"""

import numpy as np
import tensorflow as tf

TOKEN_ID_OUT_OF_RANGE = 1
PADDING_MASK_NOT_BINARY = 2
TASK_INVALID = 4
PROMPT_INVALID = 8
PADDING_MASK_NOT_RIGHT_PADDED = 16

PROBLEMS = {
    TOKEN_ID_OUT_OF_RANGE: "a token id outside [0, vocabulary_size)",
    PADDING_MASK_NOT_BINARY: "a padding-mask value other than 0 or 1",
    TASK_INVALID: "a task id outside [0, num_tasks), or no task for the row",
    PROMPT_INVALID: "a NaN or infinite prompt value, or no prompt for the row",
    PADDING_MASK_NOT_RIGHT_PADDED: (
        "a decoder-only model's padding mask that is not ones (at least "
        "one) then zeros"
    ),
}


def describe_flags():
    """`{flag: meaning}` with string keys, for an export's JSON description
    (the clients in `export/` name a refused row's problems from it)."""
    return {str(flag): meaning for flag, meaning in PROBLEMS.items()}


# Finite means |x| <= the largest float32 (NaN compares false): builtin ops
# in every converter, unlike `IsFinite`.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _each_row(condition):
    """`[B, ...]` bool -> `[B]`: true where the whole row holds."""
    return tf.reduce_all(condition, axis=list(range(1, condition.shape.rank)))


def token_ids_valid(token_ids, vocabulary_size):
    """`[B]` bool: every id of the row is in `[0, vocabulary_size)`."""
    return _each_row(
        tf.logical_and(token_ids >= 0, token_ids < vocabulary_size)
    )


def padding_mask_valid(padding_mask):
    """`[B]` bool: every mask value of the row is 0 or 1."""
    return _each_row(
        tf.logical_or(tf.equal(padding_mask, 0), tf.equal(padding_mask, 1))
    )


def prompts_finite(prompts):
    """`[B]` bool: every value of the row's prompt is finite."""
    return _each_row(tf.abs(prompts) <= _FLOAT32_MAX)


def rows_for_batch(values, batch_size, fill):
    """`values` cut or padded with `fill` to `batch_size` rows, and whether
    it had exactly one row per example (a scalar bool)."""
    padding = tf.fill(
        tf.concat([[batch_size], tf.shape(values)[1:]], 0),
        tf.cast(fill, values.dtype),
    )
    rows = tf.concat([values, padding], 0)[:batch_size]
    return rows, tf.equal(tf.shape(values)[0], batch_size)


def token_input_pairs(named):
    """The `(token ids, padding mask)` input names present in `named`: T5's
    encoder and decoder pairs, a decoder-only model's `token_ids` and
    `padding_mask`."""
    return [
        (f"{prefix}token_ids", f"{prefix}padding_mask")
        for prefix in ("encoder_", "decoder_", "")
        if f"{prefix}token_ids" in named
    ]


def right_padded(padding_mask):
    """`[B]` bool: the row's mask is ones (at least one) then zeros, as a
    decoder-only model's inputs must be."""
    lengths = tf.reduce_sum(padding_mask, axis=1, keepdims=True)
    positions = tf.range(tf.shape(padding_mask)[1])[None, :]
    prefix = tf.cast(positions < lengths, padding_mask.dtype)
    return tf.logical_and(
        _each_row(tf.equal(padding_mask, prefix)), lengths[:, 0] > 0
    )


def _flag(valid, flag):
    return tf.where(valid, 0, flag)


class RowProblems:
    """What is wrong with each row of a plain (ONNX/LiteRT) graph's inputs,
    and the inputs with every bad value replaced by a harmless one.

    Args:
        named: the graph's inputs by name (`encoder_token_ids`,
            `encoder_padding_mask`, optional `decoder_token_ids` /
            `decoder_padding_mask`, or a decoder-only model's `token_ids` /
            `padding_mask`, and `task` or `prompts`).
        vocabulary_size: the model's vocabulary size.
        num_tasks: rows in the prompt bank (mode `"bank"`).

    Attributes:
        flags: int32 `[B]`, the sum of the flags of the row's problems.
        inputs: `named` with out-of-range ids and task ids set to 0, mask
            values clipped to {0, 1} (a decoder-only row whose clipped mask
            is not right-padded gets a one-token mask), bad prompt rows
            zeroed, and `task` / `prompts` given exactly one row per
            example.

    Example:
    ```python
    problems = RowProblems(
        {"encoder_token_ids": tf.constant([[5, 1], [40000, 1]]),
         "encoder_padding_mask": tf.constant([[1, 1], [1, 1]])},
        vocabulary_size=32128,
    )
    problems.flags  # [0, 1]: row 1 holds an id outside the vocabulary
    ```
    """

    def __init__(self, named, vocabulary_size, num_tasks=0):
        inputs = dict(named)
        pairs = token_input_pairs(named)
        batch_size = tf.shape(named[pairs[0][0]])[0]
        ids_valid = mask_valid = tf.fill([batch_size], True)
        for ids_name, mask_name in pairs:
            ids, mask = named[ids_name], named[mask_name]
            ids_valid = tf.logical_and(
                ids_valid, token_ids_valid(ids, vocabulary_size)
            )
            mask_valid = tf.logical_and(mask_valid, padding_mask_valid(mask))
            in_range = tf.logical_and(ids >= 0, ids < vocabulary_size)
            inputs[ids_name] = tf.where(in_range, ids, tf.zeros_like(ids))
            inputs[mask_name] = tf.minimum(tf.maximum(mask, 0), 1)
        flags = _flag(ids_valid, TOKEN_ID_OUT_OF_RANGE) + _flag(
            mask_valid, PADDING_MASK_NOT_BINARY
        )
        if pairs == [("token_ids", "padding_mask")]:
            # A decoder-only model continues each row after its last given
            # token, so its mask must be a prefix (checked after clipping:
            # a value like 7 is flagged once, as not binary). Such a row
            # runs on its first token alone, which every row has.
            mask = inputs["padding_mask"]
            padded = right_padded(mask)
            flags += _flag(padded, PADDING_MASK_NOT_RIGHT_PADDED)
            first = tf.cast(
                tf.equal(tf.range(tf.shape(mask)[1]), 0), mask.dtype
            )
            inputs["padding_mask"] = tf.where(
                padded[:, None], mask, first[None, :]
            )
        if "task" in named:
            task, one_per_row = rows_for_batch(named["task"], batch_size, -1)
            valid = tf.logical_and(
                tf.logical_and(task >= 0, task < num_tasks), one_per_row
            )
            flags += _flag(valid, TASK_INVALID)
            inputs["task"] = tf.where(valid, task, tf.zeros_like(task))
        if "prompts" in named:
            prompts, one_per_row = rows_for_batch(
                named["prompts"], batch_size, 0.0
            )
            valid = tf.logical_and(prompts_finite(prompts), one_per_row)
            flags += _flag(valid, PROMPT_INVALID)
            inputs["prompts"] = tf.where(
                valid[:, None, None], prompts, tf.zeros_like(prompts)
            )
        self.flags = flags
        self.inputs = inputs

    def answer(self, outputs, invalid_value):
        """`outputs` `[B, ...]` with each bad row set to `invalid_value`."""
        valid = tf.equal(self.flags, 0)
        for _ in range(outputs.shape.rank - 1):
            valid = tf.expand_dims(valid, -1)
        return tf.where(valid, outputs, tf.cast(invalid_value, outputs.dtype))


def _assert_rows(valid_rows, message, name, bad_values=None):
    """An assert that every row is valid; its error gives `message`, the bad
    rows and, when given, the bad values."""
    data = [message + " Rows:", tf.reshape(tf.where(~valid_rows), [-1])]
    if bad_values is not None:
        data += ["values:", bad_values]
    return tf.debugging.Assert(
        tf.reduce_all(valid_rows), data, summarize=16, name=name
    )


def assert_one_row_each(values, batch_size, message):
    """An assert that `values` has `batch_size` rows; its error says how
    many it has ("... got 0 rows for 4 examples")."""
    rows = tf.shape(values)[0]
    return tf.debugging.Assert(
        tf.equal(rows, batch_size),
        [
            tf.strings.format(
                message + "; got {} rows for {} examples", (rows, batch_size)
            )
        ],
    )


def assert_valid(named, vocabulary_size):
    """In-graph asserts (SavedModel signatures) over token ids, padding
    masks and runtime prompts: any bad row fails the whole request with
    `InvalidArgument` naming the input, the rows, the values and the fix.

    Returns the assert ops, for `tf.control_dependencies`.
    """
    checks = []
    for ids_name, mask_name in token_input_pairs(named):
        ids, mask = named[ids_name], named[mask_name]
        in_range = tf.logical_and(ids >= 0, ids < vocabulary_size)
        checks.append(
            _assert_rows(
                token_ids_valid(ids, vocabulary_size),
                f"`{ids_name}` holds token ids outside [0, {vocabulary_size}), "
                "the model's vocabulary: encode text with the model's own "
                "tokenizer.",
                f"check_{ids_name}",
                tf.boolean_mask(ids, ~in_range),
            )
        )
        binary = tf.logical_or(tf.equal(mask, 0), tf.equal(mask, 1))
        checks.append(
            _assert_rows(
                padding_mask_valid(mask),
                f"`{mask_name}` must hold only 1 (token) and 0 (padding).",
                f"check_{mask_name}",
                tf.boolean_mask(mask, ~binary),
            )
        )
    if "prompts" in named:
        checks.append(
            _assert_rows(
                prompts_finite(named["prompts"]),
                "`prompts` has NaN or infinite values (a diverged or corrupt "
                "prompt); send finite prompts.",
                "check_prompts",
            )
        )
    return checks
