"""Sequence-length buckets: which lengths batches are padded to.

A bucketed pipeline pads each example to the smallest bucket that holds it
and fills every batch from one bucket, so a batch costs its bucket's length
instead of `max_input_length`, and XLA and TPUs still see one static shape
per bucket (one compiled step each).
"""

import numpy as np

from keras_prompt.data.data_error import DataError

# Bucket lengths of the automatic choice are multiples of this (the last is
# `max_input_length`): matmul kernels tile by 8, and a few coarse lengths
# mean few compiled steps.
BUCKET_MULTIPLE = 8
# At most this many buckets hold training examples in the automatic choice
# (plus `max_input_length`, which may hold none of them).
MAX_AUTO_BUCKETS = 4
# The automatic choice takes the fewest buckets whose padded tokens are
# within this fraction of the best `MAX_AUTO_BUCKETS` buckets: a bucket that
# saves less is not worth its compiled step and its slower-filling batches.
AUTO_TOLERANCE = 0.05


def resolve_length_buckets(value, max_input_length, error=DataError):
    """A `length_buckets` setting, checked and normalized.

    Args:
        value: `"auto"`, `None` or `0` (pad every example to
            `max_input_length`, no buckets), or a list of increasing
            positive lengths up to `max_input_length`.
        max_input_length: the longest input; always the last bucket (it is
            appended to a list that ends below it).
        error: the exception class to raise (`DataError` in pipelines,
            `TrainingError` in training settings).

    Returns:
        `"auto"`, `None`, or a tuple of ints ending in `max_input_length`.

    Raises:
        `error`, naming the value and the fix.

    Example:
    ```python
    resolve_length_buckets([64, 128], 256)  # (64, 128, 256)
    ```
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool)
                         and value == 0):
        return None
    if isinstance(value, str):
        if value == "auto":
            return "auto"
        raise error(
            f"length_buckets must be 'auto', None (pad to max_input_length) "
            f"or a list of lengths, got {value!r}. Use 'auto', None or e.g. "
            f"[64, 128, {max_input_length}] (keras-prompt: --length-buckets "
            "auto|none|64,128,256)."
        )
    fix = (f"Use increasing whole numbers from 1 to max_input_length="
           f"{max_input_length}, e.g. [64, 128, {max_input_length}], or "
           "'auto' or None.")
    try:
        lengths = list(value)
    except TypeError:
        raise error(
            f"length_buckets must be 'auto', None or a list of lengths, got "
            f"{value!r}. {fix}") from None
    if not lengths or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool)
            for n in lengths):
        raise error(f"length_buckets must hold whole numbers, got {value!r}. "
                    f"{fix}")
    lengths = [int(n) for n in lengths]
    if lengths[0] < 1 or lengths[-1] > max_input_length or any(
            a >= b for a, b in zip(lengths, lengths[1:])):
        raise error(
            f"length_buckets={lengths} is not a list of increasing lengths "
            f"from 1 to max_input_length={max_input_length}. {fix}")
    if lengths[-1] < max_input_length:
        lengths.append(max_input_length)
    return tuple(lengths)


def bucket_counts(histogram, buckets):
    """Examples per bucket: `histogram[n]` examples have `n` tokens."""
    histogram = np.asarray(histogram, np.int64)
    total = np.cumsum(histogram)
    upto = [int(total[min(b, len(total) - 1)]) for b in buckets]
    return [upto[0]] + [b - a for a, b in zip(upto, upto[1:])]


def padded_tokens(histogram, buckets):
    """Positions of the examples of `histogram` padded to their buckets
    (`sum over examples of their bucket's length`)."""
    return int(sum(c * b for c, b in zip(bucket_counts(histogram, buckets),
                                         buckets)))


def choose_length_buckets(histogram, max_length, max_buckets=MAX_AUTO_BUCKETS,
                          multiple=BUCKET_MULTIPLE, tolerance=AUTO_TOLERANCE):
    """The buckets that pad a length distribution least.

    The rule: candidate lengths are the multiples of `multiple` below
    `max_length`, and `max_length`. The top bucket is the smallest candidate
    holding the longest example; below it, for each number of buckets `k` up
    to `max_buckets`, dynamic programming over the histogram finds the `k`
    buckets with the fewest padded tokens (each example padded to the
    smallest bucket that holds it); the answer is the smallest `k` within
    `tolerance` of the best with `max_buckets`. `max_length` is appended
    when it is not the top bucket, so longer examples (of another split)
    still fit.

    Args:
        histogram: `histogram[n]` = the number of examples with `n` tokens,
            `n` from 0 to `max_length`.
        max_length: the longest possible length (`max_input_length`).
        max_buckets: the most buckets that hold examples.
        multiple: bucket lengths are multiples of it (but `max_length`).
        tolerance: accepted extra padded tokens (fraction) for a bucket
            fewer.

    Returns:
        tuple of increasing ints, the last `max_length`.

    Example:
    ```python
    histogram = np.bincount([5, 7, 9, 12, 30, 31], minlength=65)
    choose_length_buckets(histogram, 64)  # (8, 16, 32, 64)
    ```
    """
    histogram = np.asarray(histogram, np.int64)
    if len(histogram) != max_length + 1:
        raise ValueError(f"The histogram has {len(histogram)} entries; "
                         f"lengths 0..{max_length} need {max_length + 1}.")
    present = np.flatnonzero(histogram)
    if not len(present):
        return (int(max_length),)
    candidates = list(range(multiple, max_length, multiple)) + [max_length]
    top = next(c for c in candidates if c >= present[-1])
    candidates = candidates[:candidates.index(top) + 1]
    below = np.concatenate([[0], np.cumsum(histogram)])  # below[n]: < n

    def cost(lower, upper):
        """Padded tokens of the examples in `(lower, upper]`."""
        return upper * int(below[upper + 1] - below[lower + 1])

    # best[k][j]: the fewest padded tokens of the examples up to candidate j
    # in at most k + 1 buckets, the last one candidate j; choice[k][j]: the
    # candidate below that last bucket (None: k buckets do as well).
    n = len(candidates)
    best = [[cost(0, c) for c in candidates]]
    choice = [[None] * n]
    for _ in range(1, max_buckets):
        previous, row, row_choice = best[-1], [], []
        for j, upper in enumerate(candidates):
            options = [(previous[j], None)] + [
                (previous[i] + cost(candidates[i], upper), i)
                for i in range(j)]
            value, split = min(options, key=lambda o: o[0])
            row.append(value)
            row_choice.append(split)
        best.append(row)
        choice.append(row_choice)
    target = best[-1][-1] * (1 + tolerance)
    k = next(k for k in range(max_buckets) if best[k][-1] <= target)
    buckets, j = [], n - 1
    while j is not None:
        split = choice[k][j]
        if k > 0 and split is None:
            k -= 1  # as good with a bucket fewer
            continue
        buckets.append(candidates[j])
        j, k = split, k - 1
    buckets = sorted(buckets)
    if buckets[-1] != max_length:
        buckets.append(max_length)
    return tuple(int(b) for b in buckets)
