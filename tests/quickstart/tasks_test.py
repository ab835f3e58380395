"""Held-out demo tasks: registered, deterministic, and really held out."""

import numpy as np

from keras_prompt.quickstart import mixture
from keras_prompt.quickstart import tasks


def test_registered_like_any_other_task():
    import keras_prompt.quickstart  # noqa: F401  (registers the tasks)
    from keras_prompt.data import get_task
    from keras_prompt.data import list_tasks

    assert {"demo_animal", "demo_mood"} <= set(list_tasks())
    task = get_task("demo_animal")
    assert task.label_words == ["yes", "no"]
    example = next(iter(task.load("train")))
    assert example["inputs"].numpy().decode().startswith("does it mention an animal? sentence: ")
    assert example["targets"].numpy().decode() in ("yes", "no")
    assert task.num_examples("test") == 500


def test_splits_are_deterministic_balanced_and_distinct():
    for name in tasks.TASKS:
        first = tasks.generate_split(name, "test")
        assert first == tasks.generate_split(name, "test")
        labels = np.array([label for _, label in first])
        assert abs(labels.mean() - 0.5) < 0.01
        train_texts = set(tasks.split_texts(name, "train")[0])
        test_texts = tasks.split_texts(name, "test")[0]
        overlap = sum(t in train_texts for t in test_texts) / len(test_texts)
        assert overlap < 0.1, overlap


def test_formats_and_label_words_not_in_pretraining_mixture():
    rng = np.random.default_rng(0)
    examples = mixture.mixture_examples(rng, 20000)
    supervised_targets = {t for name, _, t in examples if name in ("sentiment", "topic", "color")}
    prefixes = {s.split(":")[0] for name, s, _ in examples if name in ("sentiment", "topic", "color")}
    for name, spec in tasks.TASKS.items():
        assert not set(spec["labels"]) & supervised_targets, name
        assert spec["template"].split(":")[0] not in prefixes
    # The label words are ordinary text in the language-modelling data.
    text = " ".join(s + " " + t for name, s, t in examples if name == "prefix_lm")
    for spec in tasks.TASKS.values():
        for word in spec["labels"]:
            assert f" {word} " in f" {text} "
