"""The choice of length buckets from a length distribution, and the checks
of a `length_buckets` setting."""

import itertools

import numpy as np
import pytest

from keras_prompt.data import DataError
from keras_prompt.data.length_buckets import bucket_counts
from keras_prompt.data.length_buckets import choose_length_buckets
from keras_prompt.data.length_buckets import padded_tokens
from keras_prompt.data.length_buckets import resolve_length_buckets


def _histogram(lengths, max_length):
    return np.bincount(lengths, minlength=max_length + 1)


def _brute_force(histogram, max_length, size):
    """The fewest padded tokens of any `size` candidate buckets that hold
    every example."""
    longest = int(np.flatnonzero(histogram)[-1])
    candidates = list(range(8, max_length, 8)) + [max_length]
    best = None
    for buckets in itertools.combinations(candidates, size):
        if buckets[-1] < longest:
            continue
        cost = padded_tokens(histogram, buckets)
        best = cost if best is None else min(best, cost)
    return best


def test_the_docstring_example():
    histogram = _histogram([5, 7, 9, 12, 30, 31], 64)
    assert choose_length_buckets(histogram, 64) == (8, 16, 32, 64)
    assert bucket_counts(histogram, (8, 16, 32, 64)) == [2, 2, 2, 0]
    assert padded_tokens(histogram, (8, 16, 32, 64)) == 2 * (8 + 16 + 32)


@pytest.mark.parametrize("seed", range(6))
def test_auto_buckets_pad_least(seed):
    """Against brute force over every set of candidates: the chosen buckets
    are multiples of 8 ending in max_length, at most 4 hold examples, and
    they pad at most 5% more than the best 4 (and no fewer buckets would
    do)."""
    rng = np.random.default_rng(seed)
    max_length = 72
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(14), 0.6, 400))),
                      1, max_length).astype(int)
    histogram = _histogram(lengths, max_length)
    buckets = choose_length_buckets(histogram, max_length)
    assert buckets[-1] == max_length
    assert all(b % 8 == 0 for b in buckets[:-1])
    assert list(buckets) == sorted(set(buckets))
    holding = [b for b, c in zip(buckets, bucket_counts(histogram, buckets))
               if c]
    assert 1 <= len(holding) <= 4
    cost = padded_tokens(histogram, buckets)
    best_four = _brute_force(histogram, max_length, 4)
    assert cost <= best_four * 1.05
    assert cost == _brute_force(histogram, max_length, len(holding))
    if len(holding) > 1:
        fewer = _brute_force(histogram, max_length, len(holding) - 1)
        assert fewer > best_four * 1.05
    # Far fewer positions than padding everything to the maximum.
    assert cost < 0.5 * len(lengths) * max_length


def test_auto_buckets_of_simple_distributions():
    # One length: one bucket (the smallest multiple of 8 holding it).
    assert choose_length_buckets(_histogram([11] * 50, 64), 64) == (16, 64)
    # Examples at the maximum: the maximum is the only bucket they fit.
    assert choose_length_buckets(_histogram([64] * 3, 64), 64) == (64,)
    # No examples: pad to the maximum.
    assert choose_length_buckets(np.zeros(65, int), 64) == (64,)
    # The last bucket is max_length even when it is not a multiple of 8.
    assert choose_length_buckets(_histogram([3, 20], 20), 20) == (8, 20)
    assert choose_length_buckets(_histogram([3, 4], 12), 12,
                                 max_buckets=1) == (8, 12)


def test_settings_are_checked_and_normalized():
    assert resolve_length_buckets("auto", 256) == "auto"
    assert resolve_length_buckets(None, 256) is None
    assert resolve_length_buckets(0, 256) is None
    assert resolve_length_buckets([64, 128], 256) == (64, 128, 256)
    assert resolve_length_buckets((64, 256), 256) == (64, 256)
    assert resolve_length_buckets(np.array([16]), 32) == (16, 32)
    for value, message in [
        ("short", "length_buckets must be 'auto', None (pad to "
         "max_input_length) or a list of lengths, got 'short'. Use 'auto', "
         "None or e.g. [64, 128, 256]"),
        (64, "got 64."),
        ([], "must hold whole numbers, got []."),
        ([16.5], "must hold whole numbers, got [16.5]. Use increasing whole "
         "numbers from 1 to max_input_length=256"),
        ([True], "whole numbers"),
        ([0, 64], "length_buckets=[0, 64] is not a list of increasing "
         "lengths from 1 to max_input_length=256."),
        ([128, 64], "not a list of increasing lengths"),
        ([64, 64], "not a list of increasing lengths"),
        ([64, 512], "length_buckets=[64, 512] is not a list of increasing "
         "lengths from 1 to max_input_length=256."),
    ]:
        with pytest.raises(DataError) as error:
            resolve_length_buckets(value, 256)
        assert message in str(error.value)
