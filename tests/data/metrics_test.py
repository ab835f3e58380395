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
