import numpy as np
import pytest
import tensorflow as tf

from keras_prompt.data import DataError
from keras_prompt.data import TextToTextPipeline
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
    pipeline = TextToTextPipeline(preprocessor.tokenizer, 8, 8)
    dec, dec_mask, tgt, tgt_mask = pipeline.encode_label_words(
        ["positive", "no"])
    assert dec.shape == (2, 8)
    assert (dec.numpy()[:, 0] == 0).all()
    # Each target row ends with </s> where its mask ends.
    for row in range(2):
        n = int(tgt_mask.numpy()[row].sum())
        assert tgt.numpy()[row, n - 1] == 1
    with pytest.raises(DataError, match="max_target_length"):
        TextToTextPipeline(preprocessor.tokenizer, 8, 2).encode_label_words(
            ["positive negative neutral"])
