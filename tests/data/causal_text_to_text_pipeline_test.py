"""CausalTextToTextPipeline on the tokenizers of the tiny Hugging Face GPT-2
and Llama checkpoints in `tests/models/fixtures/` (byte-level BPE; GPT-2's
start, end and pad ids are all 0, Llama's start and pad 0 and end 1, so
only the masks tell padding from special tokens).

The GPT-2 pipeline has the default separator and target prefix, the Llama
one a custom separator and no prefix: every pipeline traces its tokenizer
(several seconds), so two pipelines cover both families and both settings.
"""

import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_prompt import PromptedCausalLM
from keras_prompt.data import CausalTextToTextPipeline
from keras_prompt.data import DataError

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "models",
    "fixtures",
)
FAMILIES = ("gpt2", "llama")

INPUTS = [
    "the cat",
    "a dog",
    "a b c d e f g",  # 12 tokens: more than GPT-2's 4 and Llama's 8 of room
    "the dog",
    "a cat",  # unlabeled
]
# GPT-2: " no" is 3 tokens, with the end token filling max_target_length
# exactly; " positive" is 9 and is cut to 3. Llama: "no" 2, "positive" 8.
TARGETS = ["cat", "dog", "no", "positive", "cat"]
LABELS = [0, 1, 1, 0, -1]
LABELED = [i for i, label in enumerate(LABELS) if label >= 0]
MAX_INPUT, MAX_TARGET = 12, 4
SEQUENCE_LENGTH = MAX_INPUT + MAX_TARGET
# Keyword arguments of each family's pipeline, and what they mean.
PIPELINE_KWARGS = {
    "gpt2": {},
    "llama": {"separator": " =>", "target_prefix": ""},
}
SEPARATORS = {"gpt2": "\nAnswer:", "llama": " =>"}
PREFIXES = {"gpt2": " ", "llama": ""}


def _examples():
    return tf.data.Dataset.from_tensor_slices(
        {
            "inputs": INPUTS,
            "targets": TARGETS,
            "label": tf.constant(LABELS, tf.int32),
        }
    )


@pytest.fixture(scope="module")
def tokenizers():
    # The tokenizer alone loads from a Hugging Face directory (0.05 s, no
    # weights converted), and is the one `CausalLM.from_preset` gives.
    return {
        family: keras_hub.models.Tokenizer.from_preset(
            os.path.join(FIXTURES, family)
        )
        for family in FAMILIES
    }


@pytest.fixture(scope="module")
def pipelines(tokenizers):
    """One pipeline per family for the whole module: each traces its BPE
    tokenizer once, and caches the tokenized `examples`."""
    return {
        family: CausalTextToTextPipeline(
            tokenizer, MAX_INPUT, MAX_TARGET, **PIPELINE_KWARGS[family]
        )
        for family, tokenizer in tokenizers.items()
    }


@pytest.fixture(scope="module")
def examples():
    # One dataset object: the pipelines' tokenization cache is keyed by it.
    return _examples()


def _ids(tokenizer, text):
    return [int(i) for i in np.asarray(tokenizer(text)).reshape(-1)]


def _expected_row(family, tokenizer, text, target, max_input=MAX_INPUT,
                  max_target=MAX_TARGET):
    """The packing the docstring promises, from the eager tokenizer: the
    prefix (start, input, separator) and the target (target, end), each
    truncated."""
    sep = _ids(tokenizer, SEPARATORS[family])
    room = max_input - 1 - len(sep)
    head = [tokenizer.start_token_id] + _ids(tokenizer, text)[:room] + sep
    tail = _ids(tokenizer, PREFIXES[family] + target)[: max_target - 1]
    return head, tail + [tokenizer.end_token_id]


def _expected_batch(family, tokenizer, rows):
    """(x ids, x mask, y, sample weight) of examples `rows`."""
    xs, masks, ys, weights = [], [], [], []
    for i in rows:
        head, tail = _expected_row(family, tokenizer, INPUTS[i], TARGETS[i])
        full = head + tail
        padded = full + [tokenizer.pad_token_id] * (
            SEQUENCE_LENGTH + 1 - len(full))
        xs.append(padded[:-1])
        ys.append(padded[1:])
        masks.append([1] * len(full) + [0] * (SEQUENCE_LENGTH - len(full)))
        # Position j predicts token j + 1: weighted iff that token is a
        # target or the end token.
        weights.append(
            [float(len(head) <= j + 1 < len(full))
             for j in range(SEQUENCE_LENGTH)]
        )
    return (np.array(xs), np.array(masks), np.array(ys),
            np.array(weights, np.float32))


def test_gpt2_training_batch_literal_ids(pipelines, examples):
    """One batch spelled out in ids, so that the test does not only agree
    with a re-implementation of the packing."""
    ds = pipelines["gpt2"].training_dataset(
        examples, batch_size=3, shuffle=False, repeat=False
    )
    batches = list(ds)
    # 4 labeled examples in batches of 3: the remainder is dropped.
    assert len(batches) == 1
    x, y, w = batches[0]
    sep = [199, 33, 78, 83, 87, 259, 26]  # "\nAnswer:"
    # GPT-2's start, end and pad ids are all 0.
    np.testing.assert_array_equal(
        x["token_ids"].numpy(),
        [
            # <start> "the cat" sep " cat" <end> pad...
            [0, 325, 320] + sep + [320, 0] + [0] * 4,
            # <start> "a dog" sep " dog" <end> pad...
            [0, 65, 308] + sep + [308, 0] + [0] * 4,
            # <start> "a b c d e f g" cut to its first 4 tokens, sep,
            # " no" <end>: exactly sequence_length tokens.
            [0, 65, 265, 221, 67] + sep + [221, 78, 79, 0],
        ],
    )
    np.testing.assert_array_equal(
        x["padding_mask"].numpy(), [[1] * 12 + [0] * 4] * 2 + [[1] * 16]
    )
    np.testing.assert_array_equal(
        y.numpy()[0], [325, 320] + sep + [320, 0] + [0] * 5
    )
    # The 17th position (the padding after a full sequence) is y's last.
    np.testing.assert_array_equal(
        y.numpy()[2], [65, 265, 221, 67] + sep + [221, 78, 79, 0, 0]
    )
    # Weighted exactly where y holds a target token or <end>.
    np.testing.assert_array_equal(
        w.numpy(),
        [
            [0.0] * 9 + [1.0] * 2 + [0.0] * 5,
            [0.0] * 9 + [1.0] * 2 + [0.0] * 5,
            [0.0] * 11 + [1.0] * 4 + [0.0],
        ],
    )


def test_llama_custom_separator_literal_ids(pipelines, examples):
    """The custom separator and an empty target prefix, in ids: "cat", not
    " cat", right after " =>"."""
    pipeline = pipelines["llama"]
    assert pipeline.separator_ids == [225, 33, 34]  # " =>"
    ds = pipeline.training_dataset(
        examples, batch_size=4, shuffle=False, repeat=False
    )
    (x, y, w), = list(ds)
    # Llama's start and pad ids are 0, its end id 1.
    np.testing.assert_array_equal(
        x["token_ids"].numpy(),
        [
            # <start> "the cat" " =>" "cat" <end> pad...
            [0, 329, 324, 225, 33, 34, 305, 1] + [0] * 8,
            # <start> "a dog" " =>" "dog" <end>
            [0, 69, 312, 225, 33, 34, 291, 1] + [0] * 8,
            # <start> 8 of "a b c d e f g"'s 12 tokens " =>" "no" <end>
            [0, 69, 269, 225, 71, 225, 72, 225, 73, 225, 33, 34, 82, 83, 1, 0],
            # <start> "the dog" " =>" 3 of "positive"'s 8 tokens <end>
            [0, 329, 312, 225, 33, 34, 84, 83, 87, 1] + [0] * 6,
        ],
    )
    np.testing.assert_array_equal(
        x["padding_mask"].numpy().sum(axis=1), [8, 8, 15, 10]
    )
    np.testing.assert_array_equal(
        y.numpy()[0], [329, 324, 225, 33, 34, 305, 1] + [0] * 9
    )
    np.testing.assert_array_equal(
        w.numpy(),
        [
            [0.0] * 5 + [1.0] * 2 + [0.0] * 9,
            [0.0] * 5 + [1.0] * 2 + [0.0] * 9,
            [0.0] * 11 + [1.0] * 3 + [0.0] * 2,
            [0.0] * 5 + [1.0] * 4 + [0.0] * 7,
        ],
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_training_batches_pack_input_separator_target_end(
    family, tokenizers, pipelines, examples
):
    tokenizer = tokenizers[family]
    pipeline = pipelines[family]
    assert pipeline.sequence_length == SEQUENCE_LENGTH == 16
    ds = pipeline.training_dataset(
        examples, batch_size=2, shuffle=False, repeat=False
    )
    x_spec, y_spec, w_spec = ds.element_spec
    assert set(x_spec) == {"token_ids", "padding_mask"}
    for spec in (x_spec["token_ids"], x_spec["padding_mask"], y_spec, w_spec):
        assert spec.shape == (2, SEQUENCE_LENGTH), spec
    assert w_spec.dtype == tf.float32

    batches = list(ds)
    assert len(batches) == 2  # the 4 labeled examples, in order
    got = [np.concatenate([b[0][k].numpy() for b in batches])
           for k in ("token_ids", "padding_mask")]
    got += [np.concatenate([b[i].numpy() for b in batches]) for i in (1, 2)]
    want = _expected_batch(family, tokenizer, LABELED)
    for name, g, e in zip(("token_ids", "padding_mask", "y", "weight"),
                          got, want):
        np.testing.assert_array_equal(g, e, err_msg=name)
    ids, mask, y, w = got
    # y is x shifted left by one, as a CausalLMPreprocessor makes it.
    np.testing.assert_array_equal(y[:, :-1], ids[:, 1:])
    assert (ids[:, 0] == tokenizer.start_token_id).all()
    # Each example's loss covers its target and the end token: "cat" and
    # "dog" are 1 token + end; GPT-2's " no" 3 + end, Llama's "no" 2 + end;
    # the cut "positive" 3 + end.
    np.testing.assert_array_equal(
        w.sum(axis=1), {"gpt2": [2, 2, 4, 4], "llama": [2, 2, 3, 4]}[family]
    )
    for row in range(4):
        last = np.flatnonzero(w[row])[-1]
        # The last weighted position predicts the end token, which x holds
        # at the last position of the mask.
        assert y[row, last] == tokenizer.end_token_id
        assert ids[row, last + 1] == tokenizer.end_token_id
        assert mask[row].sum() == last + 2


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_and_stats(family, tokenizers, pipelines, examples):
    tokenizer = tokenizers[family]
    pipeline = pipelines[family]
    end = tokenizer.end_token_id
    sep = _ids(tokenizer, SEPARATORS[family])
    assert pipeline.separator_ids == sep
    # Room for 12 - 1 - 7 = 4 input tokens (GPT-2), 12 - 1 - 3 = 8 (Llama).
    room = {"gpt2": 4, "llama": 8}[family]
    assert len(sep) == MAX_INPUT - 1 - room
    assert pipeline.stats(examples) == {
        "num_examples": 5,
        "inputs_truncated": 1,  # "a b c d e f g"
        "targets_truncated": 1,  # "positive"
        "unlabeled": 1,
        "max_input_length": MAX_INPUT,
        "max_target_length": MAX_TARGET,
    }
    ds = pipeline.training_dataset(
        examples, batch_size=1, shuffle=False, repeat=False
    )
    rows = [(x["token_ids"].numpy()[0], x["padding_mask"].numpy()[0],
             y.numpy()[0], w.numpy()[0]) for x, y, w in ds]
    # The unlabeled example ("a cat") is left out.
    assert len(rows) == 4
    unlabeled = [tokenizer.start_token_id] + _ids(tokenizer, INPUTS[4])
    for ids, *_ in rows:
        assert list(ids[: len(unlabeled)]) != unlabeled

    # The cut input: the prefix is exactly max_input_length tokens, the
    # input's first `room` then the whole separator; the target comes next.
    ids, mask, y, w = rows[LABELED.index(2)]
    full_input = _ids(tokenizer, INPUTS[2])
    assert len(full_input) == 12 > room
    np.testing.assert_array_equal(
        ids[:MAX_INPUT], [tokenizer.start_token_id] + full_input[:room] + sep
    )
    no = _ids(tokenizer, PREFIXES[family] + "no") + [end]
    np.testing.assert_array_equal(ids[MAX_INPUT: MAX_INPUT + len(no)], no)
    assert mask.sum() == MAX_INPUT + len(no)
    # The first weight predicts the target's first token, right after the
    # separator.
    assert w[: MAX_INPUT - 1].sum() == 0 and w[MAX_INPUT - 1] == 1

    # The cut target: 3 of its tokens, then the end token.
    ids, mask, y, w = rows[LABELED.index(3)]
    full_target = _ids(tokenizer, PREFIXES[family] + "positive")
    assert len(full_target) == {"gpt2": 9, "llama": 8}[family]
    head = [tokenizer.start_token_id] + _ids(tokenizer, INPUTS[3]) + sep
    n = len(head) + MAX_TARGET
    np.testing.assert_array_equal(
        ids, head + full_target[:3] + [end] + [0] * (SEQUENCE_LENGTH - n)
    )
    np.testing.assert_array_equal(mask, [1] * n + [0] * (SEQUENCE_LENGTH - n))
    np.testing.assert_array_equal(
        w,
        [0.0] * (len(head) - 1) + [1.0] * MAX_TARGET
        + [0.0] * (SEQUENCE_LENGTH + 1 - n),
    )
    assert y[n - 2] == end


def test_shuffled_repeated_training_sees_only_labeled_examples(
    tokenizers, pipelines, examples
):
    """The default path (the stateless shuffle inside `flat_map`) runs with
    a BPE tokenizer: it reads the tokenization cache."""
    tokenizer = tokenizers["llama"]
    ds = pipelines["llama"].training_dataset(examples, batch_size=4, seed=3)
    want = sorted(
        tuple(row)
        for row in _expected_batch("llama", tokenizer, LABELED)[0])
    orders = []
    for x, y, w in ds.take(3):
        rows = [tuple(r) for r in x["token_ids"].numpy()]
        # Each epoch of 4 labeled examples is one batch, in its own order.
        assert sorted(rows) == want
        orders.append(tuple(rows))
    assert len(set(orders)) > 1  # reshuffled each epoch


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_batches_hold_the_prompt_with_room(
    family, tokenizers, pipelines, examples
):
    tokenizer = tokenizers[family]
    pipeline = pipelines[family]
    assert pipeline.model_input_keys == ("token_ids", "padding_mask")
    # `num_examples` given: no counting pass over the data.
    ds = pipeline.evaluation_dataset(examples, batch_size=2, num_examples=5)
    spec = ds.element_spec
    assert set(spec) == {"token_ids", "padding_mask", "label", "index",
                         "is_padding"}
    assert spec["token_ids"].shape == (2, SEQUENCE_LENGTH)
    assert spec["padding_mask"].shape == (2, SEQUENCE_LENGTH)
    batches = list(ds)
    assert len(batches) == 3  # 5 examples padded to 6
    ids = np.concatenate([b["token_ids"].numpy() for b in batches])
    mask = np.concatenate([b["padding_mask"].numpy() for b in batches])
    np.testing.assert_array_equal(
        np.concatenate([b["is_padding"].numpy() for b in batches]),
        [0, 0, 0, 0, 0, 1],
    )
    np.testing.assert_array_equal(
        np.concatenate([b["label"].numpy() for b in batches]), LABELS + [-1]
    )
    # Every example, the unlabeled one included: start + input + separator,
    # then zeros in the mask, room for the generated target.
    for i in range(5):
        head, _ = _expected_row(family, tokenizer, INPUTS[i], TARGETS[i])
        np.testing.assert_array_equal(
            ids[i],
            head + [tokenizer.pad_token_id] * (SEQUENCE_LENGTH - len(head)),
        )
        np.testing.assert_array_equal(
            mask[i], [1] * len(head) + [0] * (SEQUENCE_LENGTH - len(head))
        )
    assert mask[:5].sum(axis=1).tolist() == {
        "gpt2": [10, 10, 12, 10, 10], "llama": [6, 6, 12, 6, 6]}[family]
    # The dummy row: one real (start) token.
    np.testing.assert_array_equal(mask[5], [1] + [0] * 15)
    assert ids[5, 0] == tokenizer.start_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_label_token_ids_and_lengths(family, tokenizers, pipelines):
    tokenizer = tokenizers[family]
    end = tokenizer.end_token_id
    # The label words are tokenized eagerly: a new pipeline costs nothing.
    default = CausalTextToTextPipeline(tokenizer, MAX_INPUT, MAX_TARGET)
    cat, dog = _ids(tokenizer, " cat"), _ids(tokenizer, " dog")
    # One leading-space token each in these vocabularies.
    assert len(cat) == len(dog) == 1
    assert default.label_token_ids(["cat", "dog"]) == [
        cat + [end], dog + [end]]
    assert default.label_token_ids(["no"]) == [_ids(tokenizer, " no") + [end]]
    # " positive" is 9 tokens; 3 fit.
    with pytest.raises(DataError, match=r"'positive'.*max_target_length=4"):
        default.label_token_ids(["cat", "positive"])
    assert default.prompt_file_fields() == {
        "sequence_length": 16,
        "max_input_length": MAX_INPUT,
        "separator": "\nAnswer:",
        "target_prefix": " ",
    }
    # With no target prefix, the words as given.
    bare = CausalTextToTextPipeline(tokenizer, MAX_INPUT, 3, target_prefix="")
    assert _ids(tokenizer, "cat") != cat
    assert bare.label_token_ids(["cat", "no"]) == [
        _ids(tokenizer, "cat") + [end], _ids(tokenizer, "no") + [end]]
    assert pipelines[family].label_token_ids(["cat"]) == [
        _ids(tokenizer, PREFIXES[family] + "cat") + [end]]


@pytest.mark.parametrize("family", FAMILIES)
def test_lengths_that_leave_no_room_are_refused(family, tokenizers):
    tokenizer = tokenizers[family]
    # Start (1) + "\nAnswer:" (7) + one input token (1) = 9 at least.
    with pytest.raises(DataError, match="at least 9"):
        CausalTextToTextPipeline(tokenizer, 8, MAX_TARGET)
    assert CausalTextToTextPipeline(tokenizer, 9, 2).sequence_length == 11
    # " =>" is 3 tokens.
    with pytest.raises(DataError, match="at least 5"):
        CausalTextToTextPipeline(tokenizer, 4, 2, separator=" =>")
    with pytest.raises(DataError, match="at least 2"):
        CausalTextToTextPipeline(tokenizer, 12, 1)
    # Without a separator: the start token and one input token.
    none = CausalTextToTextPipeline(tokenizer, 2, 2, separator="")
    assert none.separator_ids == []
    assert none.sequence_length == 4


def _cross_entropy(logits, y):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]


def test_batches_train_a_prompted_causal_lm(pipelines, examples):
    # One family: building the training graphs takes seconds.
    pipeline = pipelines["gpt2"]
    backbone = keras_hub.models.CausalLM.from_preset(
        os.path.join(FIXTURES, "gpt2")
    ).backbone
    # No preprocessor: the batches are already tokenized.
    model = PromptedCausalLM(backbone, None, prompt_length=2, seed=0)
    model.compile(jit_compile=False)
    # In order and repeated (the shuffled stream is tested above): every
    # step sees the 4 labeled examples.
    ds = pipeline.training_dataset(examples, batch_size=4, shuffle=False)
    x, y, w = next(iter(ds))
    before = model.get_prompt()
    # `keras.Model.fit`, as `train()` calls it: KerasHub's would map a
    # preprocessor over the batches.
    history = keras.Model.fit(
        model, ds, steps_per_epoch=1, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    # Only the prompt trains, and it did.
    assert [v.path for v in model.trainable_variables] == [
        model.prompt_layer.trainable_variables[0].path
    ]
    assert not np.allclose(model.get_prompt(), before)

    logits = np.asarray(model.forward(x))
    assert logits.shape == (4, SEQUENCE_LENGTH, backbone.vocabulary_size)
    weighted = _cross_entropy(logits, y.numpy()) * w.numpy()
    # The batch as one element of known cardinality: Keras 3.15's
    # `evaluate` on a dataset of unknown cardinality (the pipeline's, which
    # filters out unlabeled examples) averages in one empty step, reporting
    # half the loss of a single batch.
    one_batch = tf.data.Dataset.from_tensors((x, y, w))

    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="sum_over_batch_size"
        ),
        jit_compile=False,
    )
    loss = keras.Model.evaluate(model, one_batch, verbose=0, return_dict=True)
    # Every position counts in the divisor (4 x 16), weighted or not.
    np.testing.assert_allclose(
        loss["loss"], weighted.sum() / (4 * SEQUENCE_LENGTH), atol=1e-5
    )
    # The model's default loss averages over the weighted (target) tokens,
    # and so does its token accuracy.
    model.compile(jit_compile=False)
    loss = keras.Model.evaluate(model, one_batch, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        loss["loss"], weighted.sum() / w.numpy().sum(), atol=1e-5
    )
    hits = (logits.argmax(-1) == y.numpy()) * w.numpy()
    np.testing.assert_allclose(
        loss["token_accuracy"], hits.sum() / w.numpy().sum(), atol=1e-6
    )


def test_length_buckets_cut_whole_sequences_and_keep_the_loss(
    pipelines, examples
):
    """A bucket bounds start + input + separator; its batches are
    `bucket + max_target_length` long, every sequence feature cut alike.
    The model's logits on real positions and the training loss equal those
    of the batch padded to the maximum."""
    from keras_prompt.training.token_crossentropy import TokenCrossentropy

    pipeline = pipelines["gpt2"]

    def batches():
        return list(pipeline.training_dataset(
            examples, batch_size=1, shuffle=False, repeat=False))

    plain = batches()
    try:
        # Prefix lengths 10, 10, 12, 10 (and 10 unlabeled).
        assert pipeline.use_length_buckets([10], examples) == (10, 12)
        assert pipeline.label_length == SEQUENCE_LENGTH
        bucketed = batches()
        evaluation = list(pipeline.evaluation_dataset(examples, 2))
    finally:
        pipeline.use_length_buckets(None)
    assert [x["token_ids"].shape[1] for x, _, _ in bucketed] == [
        14, 14, 16, 14]
    backbone = keras_hub.models.CausalLM.from_preset(
        os.path.join(FIXTURES, "gpt2")).backbone
    model = PromptedCausalLM(backbone, None, prompt_length=2, seed=0)
    reference = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum_over_batch_size")
    loss = TokenCrossentropy(pipeline.label_length)
    for (x, y, w), (px, py, pw) in zip(bucketed, plain):
        width = x["token_ids"].shape[1]
        for key in x:
            np.testing.assert_array_equal(x[key], px[key][:, :width])
            # Beyond the bucket: padding (GPT-2's pad id is 0).
            assert not px[key][:, width:].numpy().any()
        np.testing.assert_array_equal(y, py[:, :width])
        np.testing.assert_array_equal(w, pw[:, :width])
        assert not pw[:, width:].numpy().any()
        logits = np.asarray(model.forward(x))
        padded_logits = np.asarray(model.forward(px))
        real = x["padding_mask"].numpy()[0].astype(bool)
        np.testing.assert_allclose(
            logits[0, real], padded_logits[0, :width][real], atol=1e-5)
        np.testing.assert_allclose(
            (_cross_entropy(logits, y.numpy()) * w.numpy()).sum(),
            (_cross_entropy(padded_logits, py.numpy()) * pw.numpy()).sum(),
            atol=1e-5)
        np.testing.assert_allclose(
            float(loss(y, logits, w)),
            float(reference(py, padded_logits, pw)), atol=1e-6)
    # Evaluation: bucket 10 (4 examples, 2 batches), then bucket 12.
    assert [b["token_ids"].shape[1] for b in evaluation] == [14, 14, 16]
    assert [b["index"].numpy().tolist() for b in evaluation] == [
        [0, 1], [3, 4], [2, -1]]
