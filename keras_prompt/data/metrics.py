"""Task metrics: accuracy, binary F1 and macro-F1 over label indices.

Predictions that match no label word (possible with free-form greedy decoding)
are passed as `-1`. They count as wrong for accuracy and, as in T5's
`f1_score_with_invalid`, as the opposite of the true label for binary F1.
All metrics are returned on a 0-100 scale, like T5's evaluation.
"""

import numpy as np

METRICS = ("accuracy", "f1", "macro_f1")


def _as_arrays(predictions, labels):
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(
            f"Got {predictions.shape[0]} predictions for {labels.shape[0]} "
            "labels; pass one prediction per label."
        )
    if labels.size == 0:
        raise ValueError("Cannot compute a metric over zero examples.")
    return predictions, labels


def accuracy(predictions, labels):
    """Percentage of predictions equal to the label.

    Args:
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices.

    Example:

    >>> accuracy([0, 1, -1, 1], [0, 1, 1, 0])
    50.0
    """
    predictions, labels = _as_arrays(predictions, labels)
    return float(100.0 * np.mean(predictions == labels))


def _f1_for_class(predictions, labels, positive):
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    if tp == 0:
        return 0.0
    return float(2.0 * tp / (2.0 * tp + fp + fn))


def f1(predictions, labels, positive=1):
    """Binary F1 of the `positive` class, in percent.

    Invalid predictions (`-1`) are scored as the opposite of the true label.

    Args:
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices (0 or 1).
        positive: the index of the positive class. Defaults to `1`.

    Example:

    >>> round(f1([1, 1, 0, 0], [1, 0, 1, 0]), 2)
    50.0
    """
    predictions, labels = _as_arrays(predictions, labels)
    invalid = predictions < 0
    predictions = np.where(invalid, 1 - labels, predictions)
    return 100.0 * _f1_for_class(predictions, labels, positive)


def macro_f1(predictions, labels, num_classes=None):
    """Unweighted mean of per-class F1 (SuperGLUE CB's metric), in percent.

    Args:
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices.
        num_classes: number of classes. Defaults to `max(labels) + 1`.

    Example:

    >>> round(macro_f1([0, 1, 2, 2], [0, 1, 2, 1], num_classes=3), 2)
    77.78
    """
    predictions, labels = _as_arrays(predictions, labels)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    scores = [
        _f1_for_class(predictions, labels, c) for c in range(num_classes)
    ]
    return float(100.0 * np.mean(scores))


def compute_metrics(names, predictions, labels, num_classes):
    """Compute several metrics by name.

    Args:
        names: metric names, each one of `"accuracy"`, `"f1"`, `"macro_f1"`.
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices.
        num_classes: the number of label words of the task.

    Returns:
        A dict `{name: value}` with values in percent.

    Example:

    >>> compute_metrics(["accuracy"], [1, 0], [1, 1], num_classes=2)
    {'accuracy': 50.0}
    """
    results = {}
    for name in names:
        if name == "accuracy":
            results[name] = accuracy(predictions, labels)
        elif name == "f1":
            results[name] = f1(predictions, labels)
        elif name == "macro_f1":
            results[name] = macro_f1(predictions, labels, num_classes)
        else:
            raise ValueError(
                f"Unknown metric '{name}'. Use one of {', '.join(METRICS)}."
            )
    return results
