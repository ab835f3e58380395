"""`keras_prompt.evaluate()` on a task without a fixed label set (ReCoRD):
the decoded texts reach the metrics with their own references and groups, in
order, on a tiny model. (WSC's path differs only in its `prediction_label`,
tested in `tests/data/metrics_test.py`.)"""

import pytest

from keras_prompt.data import DataError
from keras_prompt.data import squad_f1
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.data.superglue_examples import task_on

INPUT_LENGTH = 24
TARGET_LENGTH = 6


def _record_rows(answers):
    return [
        {"passage": passage, "query": "@placeholder likes the movie",
         "entities": ["the cat", "a dog"], "answers": answer,
         "idx": {"passage": i, "query": 10 + i}}
        for i, (passage, answer) in enumerate(zip(
            ["the cat likes the movie", "a dog sees a red ball",
             "my friend paints green apples"], answers))
    ]


@pytest.fixture(scope="module")
def model(sentencepiece_proto):
    import keras_prompt

    model = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(tied=False),
        make_tiny_preprocessor(INPUT_LENGTH, TARGET_LENGTH,
                               proto=sentencepiece_proto),
        prompt_length=4, seed=1)
    model.compile(jit_compile=False)
    return model


def test_evaluate_a_free_form_task_end_to_end(model):
    import keras_prompt

    # The first query's answers include what the model says (with
    # punctuation the normalization drops), the second's do not, the third
    # has none (unlabelled, left out).
    inputs = [e["inputs"].numpy().decode() for e in task_on(
        "record", _record_rows([["x"], ["x"], []])).load("validation")]
    texts = model.generate(inputs, max_length=TARGET_LENGTH + 1)
    assert texts[0].strip(), "the tiny model should say something"
    answers = [["zebra", texts[0] + "!"], ["zzzz"], []]
    record = task_on("record", _record_rows(answers))
    metrics = keras_prompt.evaluate(
        model, None, record, batch_size=3, max_input_length=INPUT_LENGTH,
        max_target_length=TARGET_LENGTH)
    assert metrics["num_examples"] == 2 and metrics["invalid"] == 0
    assert metrics["squad_exact_match"] == 50.0
    assert metrics["squad_f1"] == pytest.approx(
        squad_f1(texts[:2], answers[:2]))
    assert metrics["squad_f1"] >= 50.0


def test_rank_classification_of_a_free_form_task_is_refused(model):
    import keras_prompt

    with pytest.raises(DataError, match="Task 'record' has free-form targets"
                       ".*rank_classification=False"):
        keras_prompt.evaluate(model, None, task_on("record", _record_rows(
            [["a"], ["b"], []])), rank_classification=True)


def test_train_a_free_form_task_with_the_default_settings(model, tmp_path):
    """`train()` on ReCoRD: one training example per answer, the decoder
    length from the task, sampled-vocabulary init instead of class labels,
    validation by the task's main metric; rank classification refused."""
    import keras_prompt

    record = task_on("record", _record_rows(
        [["the cat", "cat"], ["a dog"], ["my friend"]]))
    result = keras_prompt.train(
        model, record, output_dir=str(tmp_path / "record"), prompt_length=4,
        steps=2, batch_size=2, max_input_length=INPUT_LENGTH, eval_every=2,
        checkpoint_every=2, tensorboard=False, verbose=0, jit_compile=False)
    metrics = result["metrics"]
    assert metrics["config"]["prompt_initializer"] == "sampled_vocab"
    assert metrics["config"]["max_target_length"] == 32  # ReCoRD's entities
    assert metrics["truncation"]["train"]["num_examples"] == 4  # per answer
    assert [v["step"] for v in metrics["validation"]] == [2]
    assert "squad_f1" in metrics["validation"][0]
    with pytest.raises(DataError, match="Task 'record' has free-form"):
        keras_prompt.train(model, record, output_dir=str(tmp_path / "rank"),
                           rank_classification=True, prompt_length=4)
