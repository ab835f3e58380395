"""Length buckets in training and evaluation: the loss of each example is
the one it has padded to the maximum, Keras runs buckets of several shapes
(with and without XLA, several steps per execution) without retracing, and
evaluation gives the same predictions in the examples' order."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_prompt.training import TaskEvaluator
from keras_prompt.training.model_builder import build_pipeline
from keras_prompt.training.token_crossentropy import TokenCrossentropy
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.data.superglue_examples import MULTIRC
from tests.data.superglue_examples import task_on
from tests.training.fixtures import file_task
from tests.training.fixtures import write_csv

MAX_INPUT = 48
# Sentences of 1 to 10 words after "subject: ... sentence:": inputs of 17 to
# 43 tokens.
WORDS = ("likes hates sees finds the movie a red ball green apples old house "
         "today quickly again at night very much").split()


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    return [{"subject": ["the cat", "a dog", "my friend"][i % 3],
             "sentence": " ".join(rng.choice(WORDS, int(rng.integers(1, 11)))),
             "label": ["positive", "negative"][int(rng.integers(2))]}
            for i in range(n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sentencepiece_proto):
    from keras_prompt import PromptedT5Seq2SeqLM

    root = tmp_path_factory.mktemp("length_buckets")
    task = file_task(write_csv(root / "train.csv", _rows(40, 0)),
                     write_csv(root / "dev.csv", _rows(21, 1)))
    preprocessor = make_tiny_preprocessor(MAX_INPUT, 4,
                                          proto=sentencepiece_proto)
    model = PromptedT5Seq2SeqLM(make_tiny_backbone(tied=False), preprocessor,
                                prompt_length=3, seed=0)
    model.compile(jit_compile=False)
    return {"task": task, "model": model, "train": task.load("train"),
            "validation": task.load("validation")}


def _pipeline(setup, buckets, examples):
    pipeline = build_pipeline(setup["model"], setup["task"], MAX_INPUT)
    pipeline.use_length_buckets(buckets, examples)
    return pipeline


def _pad(batch, width):
    """A bucketed batch padded back to `width` (pad id 0, mask 0)."""
    return {key: tf.pad(value, [[0, 0], [0, width - value.shape[1]]])
            if key.startswith("encoder") else value
            for key, value in batch.items()}


def test_each_example_has_its_loss_padded_to_the_maximum(setup):
    """Same examples, bucketed vs padded to max_input_length: logits on
    every target position and each example's loss agree within 1e-5, and so
    does the training loss of whole bucketed batches."""
    train = setup["train"]
    model = setup["model"]
    bucketed = _pipeline(setup, "auto", train)
    plain = _pipeline(setup, None, train)
    assert len(bucketed.length_buckets) >= 3

    def single(pipeline):
        return list(pipeline.training_dataset(train, 1, shuffle=False,
                                              repeat=False))

    cross_entropy = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="none")
    widths = set()
    for (x, y, w), (px, py, pw) in zip(single(bucketed), single(plain)):
        width = x["encoder_token_ids"].shape[1]
        widths.add(width)
        np.testing.assert_array_equal(_pad(x, MAX_INPUT)["encoder_token_ids"],
                                      px["encoder_token_ids"])
        logits, padded = model.forward(x), model.forward(px)
        np.testing.assert_allclose(logits, padded, atol=1e-5)
        loss = np.sum(cross_entropy(y, logits) * w)
        np.testing.assert_allclose(
            loss, np.sum(cross_entropy(py, padded) * pw), atol=1e-5)
        assert loss > 1.0
    assert len(widths) >= 3

    token_loss = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(
            TokenCrossentropy(bucketed.label_length)))
    assert token_loss.label_length == bucketed.label_length
    reference = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum_over_batch_size")
    for x, y, w in bucketed.training_dataset(train, 4, seed=2).take(6):
        padded = model.forward(_pad(x, MAX_INPUT))
        np.testing.assert_allclose(
            float(token_loss(y, model.forward(x), w)),
            float(reference(y, padded, w)), atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_steps_per_execution_runs_every_bucket_without_retracing(
        setup, jit_compile):
    """Batches of several shapes, two steps per execution: after the first
    execution no traced function of the training step traces again (XLA
    compiles each bucket's shape from the one trace)."""
    from benchmarks.worker import _tracing_count
    from keras_prompt import PromptedT5Seq2SeqLM
    from keras_prompt.optimizers import Adafactor

    train = setup["train"]
    pipeline = _pipeline(setup, "auto", train)
    dataset = pipeline.training_dataset(train, 4, seed=3)
    steps = 12
    widths = [x["encoder_token_ids"].shape[1]
              for x, _, _ in dataset.take(steps)]
    assert len(set(widths)) >= 3
    model = PromptedT5Seq2SeqLM(make_tiny_backbone(),
                                setup["model"].preprocessor, prompt_length=3,
                                seed=0)
    model.compile(optimizer=Adafactor(0.3),
                  loss=TokenCrossentropy(pipeline.label_length),
                  jit_compile=jit_compile, steps_per_execution=2)
    assert model.jit_compile is jit_compile
    tracings = []

    class Tracings(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            tracings.append(_tracing_count(self.model.train_function))

    history = keras.Model.fit(model, dataset, epochs=2,
                              steps_per_epoch=steps // 2, verbose=0,
                              callbacks=[Tracings()])
    assert len(tracings) == steps // 2
    assert tracings[0] and all(t == tracings[0] for t in tracings), tracings
    assert all(np.isfinite(history.history["loss"]))
    assert int(model.optimizer.iterations.numpy()) == steps


def test_evaluation_is_the_same_with_and_without_buckets(setup):
    """Greedy and rank-classification predictions, texts and metrics of
    `TaskEvaluator`, `evaluate()` and `ensemble()`: equal, in the examples'
    order, whether batches are bucketed or padded to the maximum."""
    import keras_prompt

    model, task = setup["model"], setup["task"]
    validation = setup["validation"]
    bucketed = _pipeline(setup, "auto", validation)
    plain = _pipeline(setup, None, validation)
    # The bucketed batches do come out of order.
    indices = np.concatenate([b["index"].numpy() for b in
                              bucketed.evaluation_dataset(validation, 4)])
    real = indices[indices >= 0]
    assert sorted(real) == list(range(21)) and list(real) != sorted(real)
    for rank in (False, True):
        outputs = [TaskEvaluator(model, task, pipeline, batch_size=4,
                                 rank_classification=rank).predict(validation)
                   for pipeline in (bucketed, plain)]
        for key in ("predictions", "labels"):
            np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
        assert outputs[0]["texts"] == outputs[1]["texts"]
    labels = [["positive", "negative"].index(r["label"]) for r in _rows(21, 1)]
    np.testing.assert_array_equal(outputs[0]["labels"], labels)

    settings = dict(batch_size=4, max_input_length=MAX_INPUT)
    metrics = [keras_prompt.evaluate(model, None, task, length_buckets=b,
                                     **settings) for b in ("auto", None)]
    assert metrics[0] == metrics[1]
    prompts = [model.get_prompt(), -model.get_prompt()]
    results = [keras_prompt.ensemble(model, prompts, task, length_buckets=b,
                                     return_predictions=True, **settings)
               for b in ([16, 24], None)]
    assert results[0] == results[1]
    assert results[0]["predictions"]["labels"] == labels

    # Grouped metrics (MultiRC: exact match per question): inputs of 102,
    # 99, 106, 93 and 92 tokens, batched as [3, 4], [0, 1], [2].
    multirc = task_on("multirc", MULTIRC)
    grouped = [keras_prompt.evaluate(
        model, None, multirc, batch_size=2, max_input_length=112,
        rank_classification=True, length_buckets=buckets)
        for buckets in ([96, 104], None)]
    assert grouped[0] == grouped[1]
