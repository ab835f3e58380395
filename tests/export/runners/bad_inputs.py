"""Bad serving inputs the runners feed to every exported graph: each case is
a good feed with a few values broken, and the `invalid_inputs` flags every
row must get for it (0 for the rows left intact; see
`keras_prompt/export/input_checks.py`). Plain numpy, no keras_prompt."""

import numpy as np

TOKEN_ID = 1
PADDING_MASK = 2
TASK = 4
PROMPT = 8
NOT_RIGHT_PADDED = 16


def cases(feed, vocabulary_size, num_tasks, fixed_batch=False):
    """`{name: (feed, expected flags per row, what the case breaks, the
    bad value as a string)}` for a good `feed` of at least 4 rows."""
    # T5's encoder inputs, or a decoder-only model's only ones.
    ids_key = next(
        key for key in ("encoder_token_ids", "token_ids") if key in feed
    )
    mask_key = ids_key.replace("token_ids", "padding_mask")
    rows = len(feed[ids_key])
    found = {}

    def case(name, key, index, value, flags, shown=None):
        broken = {k: np.array(v, copy=True) for k, v in feed.items()}
        broken[key][index] = value
        expected = [0] * rows
        for row, flag in flags.items():
            expected[row] += flag
        found[name] = (broken, expected, key, shown or str(value))

    case("token_id_too_large", ids_key, (1, 0), vocabulary_size,
         {1: TOKEN_ID})
    case("negative_token_id", ids_key, (2, 1), -1, {2: TOKEN_ID})
    case("padding_mask_7", mask_key, (0, 0), 7, {0: PADDING_MASK})
    if mask_key == "padding_mask":
        # A decoder-only model's row must be right-padded.
        case("left_padding", mask_key, (2, 0), 0, {2: NOT_RIGHT_PADDED})
    if "decoder_token_ids" in feed:
        case("decoder_token_id_too_large", "decoder_token_ids", (3, 0),
             vocabulary_size + 5, {3: TOKEN_ID})
    if "task" in feed:
        case("task_out_of_range", "task", 1, num_tasks, {1: TASK})
        case("negative_task", "task", 3, -1, {3: TASK})
        if not fixed_batch:
            empty = dict(feed, task=feed["task"][:0])
            found["no_task_rows"] = (empty, [TASK] * rows, "task", "0 rows")
    if "prompts" in feed:
        case("nan_prompt", "prompts", (1, 0, 0), np.nan, {1: PROMPT}, "[1]")
        case("inf_prompt", "prompts", (3, 1, 2), np.inf, {3: PROMPT}, "[3]")
        if not fixed_batch:
            empty = dict(feed, prompts=feed["prompts"][:0])
            found["no_prompt_rows"] = (
                empty, [PROMPT] * rows, "prompts", "0 rows")
    return found
