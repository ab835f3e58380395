import pytest

from keras_prompt.data import accuracy
from keras_prompt.data import compute_metrics
from keras_prompt.data import f1
from keras_prompt.data import macro_f1


def test_accuracy_counts_invalid_as_wrong():
    assert accuracy([0, 1, -1, 1], [0, 1, 1, 0]) == pytest.approx(50.0)


def test_binary_f1():
    # tp=1 fp=1 fn=1 -> 2/(2+1+1)
    assert f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(50.0)
    # An invalid prediction on a positive example is a false negative.
    assert f1([1, -1], [1, 1]) == pytest.approx(100 * 2 / 3)
    assert f1([0, 0], [0, 0]) == 0.0


def test_macro_f1_is_the_mean_of_class_f1():
    # class 0: 1.0, class 1: tp=1 fn=1 -> 2/3, class 2: tp=1 fp=1 -> 2/3
    value = macro_f1([0, 1, 2, 2], [0, 1, 2, 1], num_classes=3)
    assert value == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)


def test_compute_metrics_and_errors():
    out = compute_metrics(["f1", "accuracy"], [1, 0], [1, 1], 2)
    assert out == {"f1": pytest.approx(100 * 2 / 3), "accuracy": 50.0}
    with pytest.raises(ValueError, match="Unknown metric"):
        compute_metrics(["bleu"], [1], [1], 2)
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        accuracy([1, 1], [1])


# --- MultiRC, ReCoRD and WSC: hand-computed, and equal to T5's own code on
# the examples of `tests/data/superglue_examples.py`. ---

def test_multirc_f1a_and_exact_match():
    from keras_prompt.data import exact_match
    from keras_prompt.data import f1a

    # Two questions x three answers. q1 all right; q2 one miss and one
    # invalid output (-1, which F1a scores as the opposite of the label).
    labels = [1, 0, 1, 0, 1, 1]
    predictions = [1, 0, 1, 1, -1, 1]
    groups = ["0/1"] * 3 + ["0/2"] * 3
    assert exact_match(predictions, labels, groups) == 50.0
    # tp = 3 (answers 0, 2, 5), fp = 1 (answer 3), fn = 1 (answer 4).
    assert f1a(predictions, labels) == pytest.approx(100 * 6 / 8)
    # Without groups every answer is its own question: accuracy.
    assert exact_match(predictions, labels) == pytest.approx(100 * 4 / 6)
    with pytest.raises(ValueError, match="2 group ids for 6 examples"):
        exact_match(predictions, labels, ["a", "b"])


def test_multirc_metrics_equal_t5s_on_the_hand_made_examples():
    from tests.data import superglue_examples as ex

    task = ex.task_on("multirc", ex.MULTIRC)
    labels = [row["label"] for row in ex.MULTIRC]
    predictions = [task.prediction_label(t) for t in ex.MULTIRC_PREDICTIONS]
    assert predictions == [1, -1, 0, 1, 0]
    groups = [f"{r['idx']['paragraph']}/{r['idx']['question']}"
              for r in ex.MULTIRC]
    metrics = task.compute_metrics(predictions, labels, groups=groups)
    assert metrics == {
        "f1a": pytest.approx(ex.T5_MULTIRC_METRICS["f1"]),
        "exact_match": pytest.approx(ex.T5_MULTIRC_METRICS["exact_match"]),
    }


def test_squad_normalization():
    from keras_prompt.data import normalize_squad

    assert normalize_squad("The Eiffel  Tower!") == "eiffel tower"
    assert normalize_squad("A U.S.-based firm, an apple") == "usbased firm apple"
    # Articles go only as whole words; punctuation goes before articles.
    assert normalize_squad("Theatre the-end") == "theatre theend"
    assert normalize_squad("a") == ""


def test_record_max_over_answers_and_deduplication():
    from keras_prompt.data import squad_exact_match
    from keras_prompt.data import squad_f1

    texts = ["The Eiffel Tower.", "Tower in Paris", "london"]
    references = [["Eiffel Tower", "Paris"], ["Eiffel Tower", "Paris"],
                  ["Rome"]]
    # 1: exact after normalization. 2: EM 0; F1 vs "eiffel tower": one
    # common token of 3 predicted and 2 reference -> 2*(1/3)(1/2)/(5/6)
    # = 0.4; vs "paris": 1 of 3 and 1 of 1 -> 0.5; the best is 0.5.
    # 3: nothing in common.
    assert squad_exact_match(texts, references) == pytest.approx(100 / 3)
    assert squad_f1(texts, references) == pytest.approx(100 * 1.5 / 3)
    # The second text is a copy of the first query (T5's per-answer
    # copies): only the first of a group counts.
    groups = ["0/0", "0/0", "1/1"]
    assert squad_exact_match(texts, references, groups) == 50.0
    assert squad_f1(texts, references, groups) == 50.0
    with pytest.raises(ValueError, match="no reference answers"):
        squad_f1(["x"], [[]])


def test_record_metrics_equal_t5s_on_the_hand_made_examples():
    from tests.data import superglue_examples as ex

    task = ex.task_on("record", ex.RECORD)
    answered = [row for row in ex.RECORD if row["answers"]]
    metrics = task.compute_metrics(
        [0, 0], [0, 0], texts=ex.RECORD_PREDICTIONS,
        references=[row["answers"] for row in answered],
        groups=["0/0", "1/1"])
    assert metrics == {
        "squad_f1": pytest.approx(ex.T5_RECORD_METRICS["f1"]),
        "squad_exact_match": pytest.approx(ex.T5_RECORD_METRICS["em"]),
    }


def test_wsc_postprocessor_equals_t5s():
    from keras_prompt.data import wsc_referent_match
    from tests.data import superglue_examples as ex

    for (prediction, referent), expected in ex.T5_WSC_POSTPROCESS:
        assert wsc_referent_match(prediction, referent) == expected, (
            prediction, referent)
    # Accuracy compares the match with the label: naming a wrong
    # candidate is an error, not naming it is right.
    task = ex.task_on("wsc", ex.WSC)
    predictions = [task.prediction_label(t, [r]) for t, r in [
        ("Tom", "Tom"), ("the suitcase", "the brown suitcase"),
        ("Sam", "Sam's brother"), ("Player X", "Bob")]]
    assert predictions == [1, 1, 0, 0]
    assert task.compute_metrics(predictions, [1, 0, 1, 0]) == {
        "accuracy": 50.0}
