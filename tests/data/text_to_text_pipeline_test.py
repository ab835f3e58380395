import numpy as np
import pytest
import tensorflow as tf

from keras_prompt.data import DataError
from keras_prompt.data import TextToTextPipeline
from tests.conftest import TINY_CORPUS
from tests.conftest import make_tiny_preprocessor

INPUTS = [
    "the cat likes the movie today",
    "a dog",
    "my friend sees a red ball quickly again at night very much",
    "our team",
    "the teacher paints green apples",
]
TARGETS = ["positive", "negative", "positive negative neutral", "no", "yes"]
LABELS = [0, 1, 0, 1, -1]


@pytest.fixture(scope="module")
def preprocessor(sentencepiece_proto):
    return make_tiny_preprocessor(8, 3, proto=sentencepiece_proto)


def _examples():
    return tf.data.Dataset.from_tensor_slices(
        {"inputs": INPUTS, "targets": TARGETS,
         "label": tf.constant(LABELS, tf.int32)})


def test_packing_matches_keras_hub_preprocessor(preprocessor):
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 3)
    ds = pipeline.training_dataset(_examples(), batch_size=4, shuffle=False,
                                   repeat=False)
    x, y, w = next(iter(ds))
    ref_x, ref_y, ref_w = preprocessor(
        {"encoder_text": INPUTS[:4], "decoder_text": TARGETS[:4]})
    for key in ref_x:
        np.testing.assert_array_equal(
            x[key].numpy(), np.asarray(ref_x[key]).astype("int32"), key)
    np.testing.assert_array_equal(y.numpy(), np.asarray(ref_y))
    np.testing.assert_array_equal(w.numpy(), np.asarray(ref_w, "float32"))
    # T5 semantics: decoder input starts with the pad id, targets end in </s>.
    assert (x["decoder_token_ids"].numpy()[:, 0] == 0).all()
    assert (w.numpy().sum(axis=1) >= 1).all()


def test_truncation_counts(preprocessor):
    tokenizer = preprocessor.tokenizer
    pipeline = TextToTextPipeline(tokenizer, 8, 3)
    stats = pipeline.stats(_examples())
    n_in = [len(np.asarray(tokenizer(t))) for t in INPUTS]
    n_out = [len(np.asarray(tokenizer(t))) for t in TARGETS]
    assert stats["num_examples"] == 5
    assert stats["unlabeled"] == 1
    assert stats["inputs_truncated"] == sum(n + 1 > 8 for n in n_in)
    assert stats["targets_truncated"] == sum(n + 1 > 3 for n in n_out)
    assert 0 < stats["inputs_truncated"] < 5
    assert 0 < stats["targets_truncated"] < 5
    # A truncated sequence still ends with </s>.
    ds = pipeline.training_dataset(_examples(), 4, shuffle=False, repeat=False)
    x, y, w = next(iter(ds))
    assert (x["encoder_token_ids"].numpy()[2, -1] == 1)


def test_every_batch_has_a_static_shape(preprocessor):
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 3)
    ds = pipeline.training_dataset(_examples(), batch_size=3, seed=1)
    x_spec, y_spec, w_spec = ds.element_spec
    for spec in list(x_spec.values()) + [y_spec, w_spec]:
        assert spec.shape.is_fully_defined(), spec
    assert x_spec["encoder_token_ids"].shape == (3, 8)
    assert y_spec.shape == (3, 3)
    for i, (x, y, w) in enumerate(ds.take(5)):
        assert x["decoder_token_ids"].shape == (3, 3)
    eval_ds = pipeline.evaluation_dataset(_examples(), batch_size=2)
    for spec in eval_ds.element_spec.values():
        assert spec.shape.is_fully_defined()
    batches = list(eval_ds)
    assert len(batches) == 3  # 5 examples padded to 6
    padding = np.concatenate([b["is_padding"].numpy() for b in batches])
    np.testing.assert_array_equal(padding, [0, 0, 0, 0, 0, 1])
    labels = np.concatenate([b["label"].numpy() for b in batches])
    np.testing.assert_array_equal(labels[:5], LABELS)


def test_seeded_shuffle_is_reproducible_and_skippable(preprocessor):
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 3)

    def first_ids(seed, skip=0, n=6):
        ds = pipeline.training_dataset(_examples(), 2, seed=seed,
                                       skip_batches=skip)
        return [x["encoder_token_ids"].numpy() for x, _, _ in ds.take(n)]

    a, b = first_ids(3), first_ids(3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = first_ids(3, skip=2, n=4)
    for u, v in zip(a[2:], c):
        np.testing.assert_array_equal(u, v)
    # Unlabeled examples never reach training.
    seen = np.concatenate(a)
    assert len(seen) == 12


def test_bad_sizes(preprocessor):
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 3)
    with pytest.raises(DataError, match="batch size must be positive"):
        pipeline.training_dataset(_examples(), batch_size=0)
    with pytest.raises(DataError, match="at least 2"):
        TextToTextPipeline(preprocessor.tokenizer, 1, 3)


def test_label_words_for_rank_classification(preprocessor):
    """Each label word's ids are its training target's: the word's pieces
    and </s>."""
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 8)
    words = ["positive", "no"]
    ids = pipeline.label_token_ids(words)
    pieces = [[int(i) for i in preprocessor.tokenizer(word)] for word in words]
    assert ids == [p + [1] for p in pieces]
    batch = next(iter(pipeline.training_dataset(
        tf.data.Dataset.from_tensor_slices({
            "inputs": ["a", "b"], "targets": words, "label": [0, 1]}),
        batch_size=2, shuffle=False)))
    _, targets, weights = batch
    assert sorted(
        [int(t) for t, w in zip(row, keep) if w]
        for row, keep in zip(targets.numpy(), weights.numpy())
    ) == sorted(ids)
    with pytest.raises(DataError, match="max_target_length"):
        TextToTextPipeline(preprocessor.tokenizer, 8, 2).label_token_ids(
            ["positive negative neutral"])


# Inputs of 2 to 48 tokens (</s> included), for length buckets.
_WORDS = " ".join(TINY_CORPUS[-13:]).split()


def _varied_examples(n=60, seed=0):
    rng = np.random.default_rng(seed)
    inputs = [" ".join(rng.choice(_WORDS, int(rng.integers(1, 16))))
              for _ in range(n)]
    return tf.data.Dataset.from_tensor_slices(
        {"inputs": inputs, "targets": ["yes"] * n,
         "label": tf.constant(np.arange(n) % 3 - (np.arange(n) == 7),
                              tf.int32)})


@pytest.fixture(scope="module")
def bucketed(preprocessor):
    """A pipeline with the automatic buckets of `_varied_examples()`, and
    one padding to the maximum, over the same examples object."""
    examples = _varied_examples()
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 48, 3)
    plain = TextToTextPipeline(preprocessor.tokenizer, 48, 3)
    buckets = pipeline.use_length_buckets("auto", examples)
    return {"pipeline": pipeline, "plain": plain, "examples": examples,
            "buckets": buckets,
            "lengths": pipeline.length_histogram(examples)}


def _batches(pipeline, examples, n, **kwargs):
    ds = pipeline.training_dataset(examples, 4, **kwargs)
    return [(x["encoder_token_ids"].numpy(), x["encoder_padding_mask"].numpy(),
             y.numpy()) for x, y, _ in ds.take(n)]


def test_length_buckets_are_chosen_from_the_stats_pass(bucketed, caplog):
    buckets, histogram = bucketed["buckets"], bucketed["lengths"]
    assert histogram.sum() == 60 and histogram[0] == 0
    assert histogram[48] > 0  # some inputs are truncated to the maximum
    assert buckets[-1] == 48 and len(buckets) >= 3
    assert all(b % 8 == 0 for b in buckets)
    pipeline = TextToTextPipeline(bucketed["pipeline"].tokenizer, 48, 3)
    with caplog.at_level("INFO"):
        assert pipeline.use_length_buckets("auto",
                                           bucketed["examples"]) == buckets
    assert f"Length buckets {list(buckets)} (auto" in caplog.text
    assert "with padding to max_input_length=48" in caplog.text
    assert pipeline.use_length_buckets([20], None) == (20, 48)
    assert pipeline.use_length_buckets(None) is None
    with pytest.raises(DataError, match="pass them"):
        pipeline.use_length_buckets("auto")
    with pytest.raises(DataError, match="from 1 to max_input_length=48"):
        pipeline.use_length_buckets([64])


def test_bucketed_batches_are_static_single_bucket_and_interleaved(bucketed):
    """Every batch holds examples of one bucket, cut to that bucket's length
    (the targets keep theirs), and the buckets interleave."""
    pipeline, buckets = bucketed["pipeline"], bucketed["buckets"]
    ds = pipeline.training_dataset(bucketed["examples"], 4, seed=5)
    x_spec, y_spec, w_spec = ds.element_spec
    assert x_spec["encoder_token_ids"].shape.as_list() == [4, None]
    assert x_spec["decoder_token_ids"].shape == (4, 3)
    assert y_spec.shape == (4, 3) and w_spec.shape == (4, 3)
    # The same examples padded to the maximum, by their tokens.
    plain = {}
    for batch in bucketed["plain"].evaluation_dataset(bucketed["examples"], 8):
        for row, row_mask in zip(batch["encoder_token_ids"].numpy(),
                                 batch["encoder_padding_mask"].numpy()):
            plain[tuple(row[np.flatnonzero(row_mask)])] = row
    widths = []
    for ids, mask, y in _batches(pipeline, bucketed["examples"], 40, seed=5):
        width = ids.shape[1]
        assert width in buckets
        lengths = mask.sum(axis=1)
        lower = ([0] + list(buckets))[buckets.index(width)]
        assert ((lengths > lower) & (lengths <= width)).all(), (width, lengths)
        for row, row_mask in zip(ids, mask):
            full = plain[tuple(row[np.flatnonzero(row_mask)])]
            np.testing.assert_array_equal(row, full[:width])
            assert not full[width:].any()
        widths.append(width)
    assert len(set(widths)) >= 3
    switches = sum(a != b for a, b in zip(widths, widths[1:]))
    assert switches >= len(widths) // 4, widths


def test_bucketed_batches_are_deterministic_and_resume_exactly(bucketed,
                                                               preprocessor):
    """Another pipeline object, another iterator, the same seed: the same
    batches; skipping k batches gives the rest of that stream; every
    labelled example is used once per epoch (up to those still waiting in a
    bucket)."""
    examples = bucketed["examples"]
    first = _batches(bucketed["pipeline"], examples, 40, seed=9)
    again = TextToTextPipeline(preprocessor.tokenizer, 48, 3)
    again.use_length_buckets(bucketed["buckets"])
    for u, v in zip(first, _batches(again, examples, 40, seed=9)):
        for a, b in zip(u, v):
            np.testing.assert_array_equal(a, b)
    resumed = _batches(bucketed["pipeline"], examples, 33, seed=9,
                       skip_batches=7)
    for u, v in zip(first[7:], resumed):
        np.testing.assert_array_equal(u[0], v[0])
    other = _batches(bucketed["pipeline"], examples, 40, seed=10)
    assert any(u[0].shape != v[0].shape or (u[0] != v[0]).any()
               for u, v in zip(first, other))
    # 59 labelled examples: 160 rows are more than two epochs; each example
    # is used 2 or 3 times, none more than one epoch ahead of another.
    seen = {}
    for ids, mask, _ in first:
        for row, row_mask in zip(ids, mask):
            key = tuple(row[np.flatnonzero(row_mask)])
            seen[key] = seen.get(key, 0) + 1
    assert len(seen) >= 57  # a few inputs repeat among the 59
    assert max(seen.values()) - min(seen.values()) <= 2


def test_finite_bucketed_stream_drops_only_partial_batches(bucketed):
    pipeline = bucketed["pipeline"]
    batches = _batches(pipeline, bucketed["examples"], 100, shuffle=False,
                       repeat=False)
    rows = sum(len(ids) for ids, _, _ in batches)
    labelled = 59
    assert labelled - rows <= len(bucketed["buckets"]) * 3
    assert rows % 4 == 0 and rows >= labelled - 3 * len(bucketed["buckets"])


def test_bucketed_evaluation_holds_every_example_once(bucketed):
    pipeline, buckets = bucketed["pipeline"], bucketed["buckets"]
    examples = bucketed["examples"]
    counts = [c for c in
              np.add.reduceat(bucketed["lengths"], [0] + [b + 1 for b in
                                                          buckets[:-1]])]
    plain = list(bucketed["plain"].evaluation_dataset(examples, 8))
    plain_ids = np.concatenate([b["encoder_token_ids"] for b in plain])
    np.testing.assert_array_equal(
        np.concatenate([b["index"] for b in plain])[:60], np.arange(60))
    batches = list(pipeline.evaluation_dataset(examples, 8))
    assert len(batches) == sum(-(-c // 8) for c in counts)
    indices, widths = [], []
    for batch in batches:
        ids = batch["encoder_token_ids"].numpy()
        width = ids.shape[1]
        widths.append(width)
        assert width in buckets and ids.shape[0] == 8
        real = batch["is_padding"].numpy() == 0
        index = batch["index"].numpy()
        assert (index[~real] == -1).all() and (index[real] >= 0).all()
        assert (batch["label"].numpy()[~real] == -1).all()
        mask = batch["encoder_padding_mask"].numpy()
        assert (mask[~real].sum(axis=1) == 1).all()  # dummy rows: one token
        np.testing.assert_array_equal(ids[real], plain_ids[index[real], :width])
        indices.extend(index[real])
    # Bucket by bucket, the shortest first; each example once.
    assert widths == sorted(widths)
    assert sorted(indices) == list(range(60))
