"""Task metrics, in percent like T5's evaluation.

Two kinds:
- on label indices (`accuracy`, `f1`, `macro_f1`, and MultiRC's `f1a` and
  `exact_match`): predictions that match no label word (possible with
  free-form greedy decoding) are passed as `-1`. They count as wrong for
  accuracy and exact match and, as in T5's `f1_score_with_invalid`, as the
  opposite of the true label for binary F1.
- on predicted texts against reference answers (`squad_exact_match`,
  `squad_f1`, ReCoRD's metrics): both sides are normalized as in the SQuAD
  evaluation script and each prediction gets its best score over its
  references, as in T5's `squad` metric.

Metrics that score groups of examples (`exact_match`; and the SQuAD metrics,
which keep one example per group as T5's `deduplicate_metric` does) take a
group id per example; without groups every example is its own group.
"""

import collections
import re
import string

import numpy as np

# Metrics computed from label indices (`predictions` and `labels`).
LABEL_METRICS = ("accuracy", "f1", "macro_f1", "f1a", "exact_match")
# Metrics computed from predicted texts and reference answers.
TEXT_METRICS = ("squad_exact_match", "squad_f1")
METRICS = LABEL_METRICS + TEXT_METRICS


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


def f1a(predictions, labels):
    """MultiRC's F1a: binary F1 of `True` (index 1) over all answer options.

    The same computation as `f1`; SuperGLUE names it F1a ("a" for answer
    options) and T5 computes it with `f1_score_with_invalid` over every
    answer, ungrouped.

    Args:
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices (0 = False, 1 = True).

    Example:

    >>> round(f1a([1, 0, 1, -1], [1, 1, 0, 1]), 2)
    40.0
    """
    return f1(predictions, labels, positive=1)


def _group_ids(groups, size):
    """One hashable group id per example (each example alone without)."""
    if groups is None:
        return list(range(size))
    groups = [g.decode() if isinstance(g, bytes) else g for g in groups]
    if len(groups) != size:
        raise ValueError(
            f"Got {len(groups)} group ids for {size} examples; pass one group "
            "id per example."
        )
    return groups


def exact_match(predictions, labels, groups=None):
    """Percentage of groups whose every example is predicted correctly.

    MultiRC's EM: the groups are the questions and their examples the
    answer options; a question counts only when all of its answers are
    labelled correctly (T5's `mean_group_metric(all_match)`). An invalid
    prediction (`-1`) is wrong.

    Args:
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices.
        groups: a group id per example (e.g. `"paragraph/question"`);
            `None` makes every example its own group (then this equals
            accuracy).

    Example:

    >>> exact_match([1, 0, 1, 1], [1, 0, 0, 1], groups=["q1", "q1", "q2", "q2"])
    50.0
    """
    predictions, labels = _as_arrays(predictions, labels)
    groups = _group_ids(groups, labels.size)
    all_correct = collections.OrderedDict()
    for group, correct in zip(groups, predictions == labels):
        all_correct[group] = all_correct.get(group, True) and bool(correct)
    return float(100.0 * np.mean(list(all_correct.values())))


_PUNCTUATION = frozenset(string.punctuation)


def normalize_squad(text):
    """SQuAD's answer normalization, as T5's `normalize_squad`.

    Lowercase, drop ASCII punctuation, replace the articles "a", "an" and
    "the" by a space, and collapse whitespace.

    Example:

    >>> normalize_squad("The  Eiffel-Tower!")
    'eiffeltower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(reference, prediction):
    """Token-overlap F1 of two normalized strings (SQuAD's)."""
    prediction_tokens = prediction.split()
    reference_tokens = reference.split()
    common = (collections.Counter(prediction_tokens)
              & collections.Counter(reference_tokens))
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(reference_tokens)
    return 2.0 * precision * recall / (precision + recall)


def _as_text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _squad_scores(texts, references, groups, score):
    """Mean over groups of the best `score(reference, prediction)`."""
    texts = [_as_text(t) for t in texts]
    if len(references) != len(texts):
        raise ValueError(
            f"Got {len(texts)} predictions for {len(references)} reference "
            "lists; pass one list of reference answers per prediction."
        )
    if not texts:
        raise ValueError("Cannot compute a metric over zero examples.")
    groups = _group_ids(groups, len(texts))
    seen = set()
    best = []
    for index, (text, answers, group) in enumerate(
            zip(texts, references, groups)):
        # One copy per group: T5 makes one eval example per answer of a
        # ReCoRD query and scores only the first (`deduplicate_metric`).
        if group in seen:
            continue
        seen.add(group)
        answers = [normalize_squad(_as_text(a)) for a in answers]
        if not answers:
            raise ValueError(
                f"Example {index} (group {group!r}) has no reference "
                "answers; pass at least one, or leave unanswered examples "
                "out of the metric."
            )
        prediction = normalize_squad(text)
        best.append(max(score(a, prediction) for a in answers))
    return float(100.0 * np.mean(best))


def squad_exact_match(texts, references, groups=None):
    """SQuAD exact match, best over each example's reference answers.

    ReCoRD's EM (T5's `squad` metric under `deduplicate_metric`): texts and
    answers are compared after `normalize_squad`; of several examples with
    the same group id only the first counts.

    Args:
        texts: the predicted strings.
        references: a list of reference answers per prediction.
        groups: optional group id per prediction (ReCoRD:
            `"passage/query"`).

    Example:

    >>> squad_exact_match(["the Eiffel Tower", "Paris"],
    ...                   [["Eiffel Tower"], ["London", "Rome"]])
    50.0
    """
    return _squad_scores(texts, references, groups,
                         lambda answer, prediction: float(answer == prediction))


def squad_f1(texts, references, groups=None):
    """SQuAD token F1, best over each example's reference answers.

    ReCoRD's F1 (T5's `squad` metric under `deduplicate_metric`): the
    overlap of normalized whitespace tokens; of several examples with the
    same group id only the first counts.

    Args:
        texts: the predicted strings.
        references: a list of reference answers per prediction.
        groups: optional group id per prediction.

    Example:

    >>> squad_f1(["Eiffel Tower in Paris"], [["the Eiffel Tower"]])
    66.66666666666666
    """
    return _squad_scores(texts, references, groups, _token_f1)


def compute_metrics(names, predictions, labels, num_classes, *, texts=None,
                    references=None, groups=None):
    """Compute several metrics by name.

    Args:
        names: metric names, each one of `METRICS`.
        predictions: int array of predicted label indices (`-1` = invalid).
        labels: int array of true label indices.
        num_classes: the number of label words of the task (`None` for
            tasks without a fixed label set).
        texts: the predicted strings (for `squad_*`).
        references: a list of reference answers per example (for
            `squad_*`).
        groups: a group id per example (for `exact_match` and `squad_*`).

    Returns:
        A dict `{name: value}` with values in percent.

    Example:

    >>> compute_metrics(["accuracy"], [1, 0], [1, 1], num_classes=2)
    {'accuracy': 50.0}
    """
    results = {}
    for name in names:
        if name in TEXT_METRICS and (texts is None or references is None):
            raise ValueError(
                f"Metric '{name}' compares predicted texts with reference "
                "answers; pass texts= and references=."
            )
        if name == "accuracy":
            results[name] = accuracy(predictions, labels)
        elif name == "f1":
            results[name] = f1(predictions, labels)
        elif name == "macro_f1":
            results[name] = macro_f1(predictions, labels, num_classes)
        elif name == "f1a":
            results[name] = f1a(predictions, labels)
        elif name == "exact_match":
            results[name] = exact_match(predictions, labels, groups)
        elif name == "squad_exact_match":
            results[name] = squad_exact_match(texts, references, groups)
        elif name == "squad_f1":
            results[name] = squad_f1(texts, references, groups)
        else:
            raise ValueError(
                f"Unknown metric '{name}'. Use one of {', '.join(METRICS)}."
            )
    return results
