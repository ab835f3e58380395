"""`keras_prompt.evaluate()` and `TaskEvaluator`: the numbers equal what the
model's own `generate()`/`score()` give, example by example."""

import json

import numpy as np
import pytest

from keras_prompt.data import DataError
from keras_prompt.data import TextToTextPipeline
from keras_prompt.prompts import PromptFileError
from keras_prompt.training import TaskEvaluator
from tests.training.fixtures import TEMPLATE
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import make_tiny_preset
from tests.training.fixtures import write_csv

LABELS = ["positive", "negative"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import keras_prompt

    root = tmp_path_factory.mktemp("evaluate")
    preset = make_tiny_preset(root / "preset", tied=False)
    rows = make_rows(10, 30)
    data = write_csv(root / "dev.csv", rows)
    model = keras_prompt.PromptedT5Seq2SeqLM.from_preset(
        preset, prompt_length=4, seed=1, encoder_sequence_length=24,
        decoder_sequence_length=4)
    model.compile(jit_compile=False)
    prompt = model.save_prompt(str(root / "prompt.safetensors"), labels=LABELS)
    texts = [TEMPLATE.format(**row) for row in rows]
    return {"root": root, "preset": preset, "data": data, "rows": rows,
            "texts": texts, "model": model, "prompt": prompt}


def _target_length(model):
    """The longest label word's tokens plus `</s>`."""
    tokenizer = model.preprocessor.tokenizer
    return max(len(np.asarray(tokenizer(w))) for w in LABELS) + 1


def _generated(setup):
    """`model.generate()` of every text, computed once per module."""
    if "generated" not in setup:
        model = setup["model"]
        setup["generated"] = model.generate(
            setup["texts"], max_length=_target_length(model) + 1)
    return setup["generated"]


def _scores(setup):
    """`model.score()` of every text and label, computed once per module."""
    if "scores" not in setup:
        setup["scores"] = setup["model"].score(setup["texts"], LABELS)
    return setup["scores"]


def _expected_greedy(setup):
    outputs = _generated(setup)
    labels = [row["label"] for row in setup["rows"]]
    hits = [o.strip() == y for o, y in zip(outputs, labels)]
    invalid = sum(o.strip() not in LABELS for o in outputs)
    return 100.0 * np.mean(hits), invalid


def _expected_rank(setup):
    scores = _scores(setup)
    labels = [LABELS.index(row["label"]) for row in setup["rows"]]
    return 100.0 * np.mean(np.argmax(scores, axis=1) == labels)


def test_evaluate_greedy_and_rank_classification(setup, tmp_path):
    import keras_prompt

    task = file_task(setup["data"], setup["data"])
    output = tmp_path / "metrics.json"
    greedy = keras_prompt.evaluate(
        setup["preset"], setup["prompt"], task, split="validation",
        batch_size=4, max_input_length=24, jit_compile=False, output=str(output))
    accuracy, invalid = _expected_greedy(setup)
    assert greedy["accuracy"] == pytest.approx(accuracy)
    assert greedy["invalid"] == invalid
    assert greedy["num_examples"] == 10 and greedy["mode"] == "greedy"
    assert json.loads(output.read_text()) == greedy
    ranked = keras_prompt.evaluate(
        setup["preset"], setup["prompt"], task, batch_size=4,
        max_input_length=24, rank_classification=True, jit_compile=False)
    assert ranked["accuracy"] == pytest.approx(_expected_rank(setup))
    assert ranked["invalid"] == 0
    limited = keras_prompt.evaluate(
        setup["model"], None, task, batch_size=4, max_input_length=24,
        max_examples=3)
    assert limited["num_examples"] == 3


def test_evaluate_refuses_a_prompt_of_another_backbone(setup, tmp_path):
    import keras_prompt
    from tests.training.fixtures import make_tiny_preset as preset_of

    other = preset_of(tmp_path / "other", tied=True)
    with pytest.raises(PromptFileError, match="fingerprint"):
        keras_prompt.evaluate(other, setup["prompt"],
                              file_task(setup["data"], setup["data"]))


def test_task_evaluator_predicts_every_example_once(setup):
    """10 examples in batches of 4: the padded last batch adds nothing."""
    model = setup["model"]
    task = file_task(setup["data"], setup["data"])
    length = _target_length(model)
    pipeline = TextToTextPipeline(model.preprocessor.tokenizer, 24, length)
    greedy = TaskEvaluator(model, task, pipeline, batch_size=4).predict(
        task.load("validation"))
    assert len(greedy["texts"]) == len(greedy["labels"]) == 10
    assert greedy["texts"] == _generated(setup)
    np.testing.assert_array_equal(
        greedy["labels"], [LABELS.index(r["label"]) for r in setup["rows"]])
    expected = [LABELS.index(t.strip()) if t.strip() in LABELS else -1
                for t in greedy["texts"]]
    np.testing.assert_array_equal(greedy["predictions"], expected)
    ranked = TaskEvaluator(model, task, pipeline, batch_size=4,
                           rank_classification=True).predict(task.load("validation"))
    np.testing.assert_array_equal(
        ranked["predictions"],
        np.argmax(_scores(setup), axis=1))


class UnlabeledSource:
    """A test split without labels (label -1), as TFDS gives them."""

    def __init__(self, rows):
        self.rows = rows

    def load(self, split, data_dir=None):
        import tensorflow as tf

        columns = {key: [row[key] for row in self.rows]
                   for key in ("subject", "sentence")}
        columns["label"] = [-1] * len(self.rows)
        return tf.data.Dataset.from_tensor_slices(columns)


def test_task_evaluator_needs_labels(setup):
    from keras_prompt.data import Task
    from keras_prompt.data import TemplateFormatter

    model = setup["model"]
    task = Task("unlabeled", UnlabeledSource(setup["rows"][:4]),
                TemplateFormatter(TEMPLATE), label_words=LABELS)
    pipeline = TextToTextPipeline(model.preprocessor.tokenizer, 24,
                                  _target_length(model))
    with pytest.raises(DataError, match="No labelled examples"):
        TaskEvaluator(model, task, pipeline, batch_size=4).evaluate(
            task.load("test"))
