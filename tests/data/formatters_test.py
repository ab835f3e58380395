import pytest
import tensorflow as tf

from keras_prompt.data import DataError
from keras_prompt.data import GLUE_TASKS
from keras_prompt.data import TemplateFormatter
from keras_prompt.data import get_task
from keras_prompt.data import list_tasks
from keras_prompt.data import register_task


def _format(task_name, **features):
    task = get_task(task_name)
    example = {k: tf.constant(v) for k, v in features.items()}
    return task.formatter(example).numpy().decode()


def test_t5_glue_formats():
    assert _format("rte", premise="P.", hypothesis="H.") == \
        "rte hypothesis: H. premise: P."
    assert _format("glue_rte", sentence1="A.", sentence2="B.") == \
        "rte sentence1: A. sentence2: B."
    assert _format("mrpc", sentence1="A.", sentence2="B.") == \
        "mrpc sentence1: A. sentence2: B."
    assert _format("boolq", question="q?", passage="p.") == \
        "boolq passage: p. question: q?"
    assert _format("wic", sentence1="a", sentence2="b", word="w") == \
        "wic sentence1: a sentence2: b word: w"
    assert _format("copa", premise="p", choice1="c1", choice2="c2",
                   question="cause") == \
        "copa choice1: c1 choice2: c2 premise: p question: cause"
    assert _format("sst2", sentence="fun") == "sst2 sentence: fun"
    assert _format("qnli", question="q", sentence="s") == \
        "qnli question: q sentence: s"


def test_builtin_tasks_labels_and_metrics():
    assert {"boolq", "cb", "copa", "rte", "wic", "sst2", "mrpc", "qqp",
            "mnli", "qnli"} <= set(list_tasks())
    assert get_task("rte").label_words == ["entailment", "not_entailment"]
    assert get_task("mrpc").metrics == ("f1", "accuracy")
    assert get_task("qqp").main_metric == "f1"
    assert get_task("cb").main_metric == "macro_f1"
    assert get_task("mnli").source_split("validation") == "validation_matched"
    assert get_task("boolq").label_words == ["False", "True"]
    assert len(GLUE_TASKS) == 14
    with pytest.raises(DataError, match="Unknown task 'nope'.*rte"):
        get_task("nope")


def test_register_task():
    register_task("my_rte", lambda: get_task("rte"), overwrite=True)
    assert get_task("my_rte").name == "rte"
    with pytest.raises(ValueError, match="already registered"):
        register_task("my_rte", lambda: None)


def test_template_formatter():
    f = TemplateFormatter("premise: {premise} hypothesis: {hypothesis} {{x}}")
    assert f.columns == ["premise", "hypothesis"]
    out = f({"premise": tf.constant("P"), "hypothesis": tf.constant("H")})
    assert out.numpy().decode() == "premise: P hypothesis: H {x}"
    assert f.format_python({"premise": "P", "hypothesis": "H"}) == \
        "premise: P hypothesis: H {x}"
    with pytest.raises(DataError, match="names no column"):
        TemplateFormatter("no fields")
    with pytest.raises(DataError, match="positional"):
        TemplateFormatter("a {}")


@pytest.mark.parametrize(
    "template, problem",
    [
        ("premise: {premise", "expected '}' before end of string"),
        ("premise} {premise}", "Single '}' encountered in format string"),
    ],
)
def test_template_parse_error_shows_the_braces_to_type(template, problem):
    with pytest.raises(DataError) as e:
        TemplateFormatter(template)
    assert str(e.value) == (
        f"Cannot parse the template {template!r}: {problem}. Use {{column}} "
        "for a column and {{ / }} for literal braces."
    )
